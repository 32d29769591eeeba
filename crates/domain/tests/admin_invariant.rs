//! Random sequences of admin operations by random actors never leave zero active admins.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use gatehouse_domain::testing::{InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, Email, Hs256Tokens, JwtSecret, Origin, Password, TokenTtl, UserChanges, UserId,
    UserQuery, UserService, UserStatus,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    SetStatus(UserStatus),
    SetAdmin(bool),
    Delete,
    ResetPassword,
    Register,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::sample::select(UserStatus::ALL.to_vec()).prop_map(Op::SetStatus),
        3 => any::<bool>().prop_map(Op::SetAdmin),
        2 => Just(Op::Delete),
        1 => Just(Op::ResetPassword),
        1 => Just(Op::Register),
    ]
}

fn actions() -> impl Strategy<Value = Vec<(u8, u8, Op)>> {
    // (actor index, target index, operation); index 0 as actor is the CLI operator.
    prop::collection::vec((0u8..8, 1u8..8, op()), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_zero_active_admins(steps in actions()) {
        let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
        let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
        let users = UserService::new(Arc::new(InMemoryStore::new()), Arc::new(PlainHasher), tokens);
        let password = Password::parse("tr0mbone-kettle").unwrap();
        let mut registered = 0u32;
        for _ in 0..4 {
            users.register(Email::parse(&format!("u{registered}@example.com")).unwrap(), &password, &Origin::default()).unwrap();
            registered += 1;
        }
        for (actor, target, op) in steps {
            let actor = if actor == 0 { Actor::Operator } else { Actor::User(UserId::new(i64::from(actor)).unwrap()) };
            let target = UserId::new(i64::from(target)).unwrap();
            // Refusals are expected and fine; only the invariant matters.
            let _ = match op {
                Op::SetStatus(status) => users.update_user(actor, target, &UserChanges { status: Some(status), ..UserChanges::default() }, &Origin::default()).map(drop),
                Op::SetAdmin(flag) => users.update_user(actor, target, &UserChanges { is_admin: Some(flag), ..UserChanges::default() }, &Origin::default()).map(drop),
                Op::Delete => users.delete_user(actor, target, &Origin::default()),
                Op::ResetPassword => users.reset_password(actor, target, &password, &Origin::default()).map(drop),
                Op::Register => {
                    registered += 1;
                    users.register(Email::parse(&format!("u{registered}@example.com")).unwrap(), &password, &Origin::default()).map(drop)
                }
            };
            let all = users.list_users(Actor::Operator, &UserQuery::default()).unwrap();
            let active_admins = all.items.iter().filter(|u| u.is_active_admin()).count();
            prop_assert!(all.total == 0 || active_admins >= 1, "no active admin among {:?}", all.items);
        }
    }
}
