//! Random sequences of admin operations by random actors, checked against a model of the
//! rules both ways: never zero active admins (safety), and every operation the rules allow
//! succeeds, with exactly the refusal the rules name otherwise (liveness). Demoting,
//! disabling or deleting an admin goes through whenever another active admin remains, and
//! approving a pending user goes through for any active admin. Rejections are among the
//! statuses; bulk decisions are all or nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_domain::testing::{InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, BulkIds, Decision, Email, Error, Hs256Tokens, JwtSecret, LastAdminChange, Origin,
    Password, TokenTtl, UserChanges, UserId, UserQuery, UserService, UserStatus,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    SetStatus(UserStatus),
    SetAdmin(bool),
    Delete,
    ResetPassword,
    Register,
    /// A bulk decision on these targets (distinct ids, the op's target first).
    Decide(Vec<u8>, Decision),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::sample::select(UserStatus::ALL.to_vec()).prop_map(Op::SetStatus),
        3 => any::<bool>().prop_map(Op::SetAdmin),
        2 => Just(Op::Delete),
        1 => Just(Op::ResetPassword),
        1 => Just(Op::Register),
        2 => (
            prop::collection::btree_set(1u8..10, 0..4),
            prop::sample::select(vec![Decision::Approve, Decision::Reject]),
        )
            .prop_map(|(more, decision)| Op::Decide(more.into_iter().collect(), decision)),
    ]
}

fn actions() -> impl Strategy<Value = Vec<(u8, u8, Op)>> {
    // (actor index, target index, operation); index 0 as actor is the CLI operator.
    prop::collection::vec((0u8..8, 1u8..8, op()), 1..60)
}

/// What the rules say about a user: its admin flag and status, by id.
type Model = BTreeMap<i64, (bool, UserStatus)>;

fn active_admins(model: &Model) -> usize {
    model
        .values()
        .filter(|(admin, status)| *admin && *status == UserStatus::Approved)
        .count()
}

/// The refusal the rules give an acting user, if any (the operator is never refused).
fn refusal_of(model: &Model, actor: Actor) -> Option<Error> {
    let Actor::User(id) = actor else {
        return None;
    };
    match model.get(&id.get()) {
        None => Some(Error::Unauthenticated),
        Some((_, status)) if *status != UserStatus::Approved => Some(Error::Unauthenticated),
        Some((false, _)) => Some(Error::AdminRequired),
        Some(_) => None,
    }
}

/// What `op` by `actor` on `target` must give, and the model after it.
fn expected(model: &mut Model, actor: Actor, target: i64, op: &Op) -> Result<(), Error> {
    if matches!(op, Op::Register) {
        return Ok(()); // the model learns the new id from the service's answer
    }
    if let Some(refusal) = refusal_of(model, actor) {
        return Err(refusal);
    }
    if let Op::Decide(more, decision) = op {
        let mut ids = vec![target];
        ids.extend(
            more.iter()
                .map(|&id| i64::from(id))
                .filter(|&id| id != target),
        );
        let missing: Vec<UserId> = ids
            .iter()
            .filter(|id| !model.contains_key(id))
            .map(|&id| UserId::new(id).unwrap())
            .collect();
        if !missing.is_empty() {
            return Err(Error::UsersNotFound(missing));
        }
        let undecidable: Vec<UserId> = ids
            .iter()
            .filter(|id| model[id].1 != UserStatus::Pending)
            .map(|&id| UserId::new(id).unwrap())
            .collect();
        if !undecidable.is_empty() {
            return Err(Error::NotPending(undecidable));
        }
        for id in ids {
            model.get_mut(&id).unwrap().1 = decision.status();
        }
        return Ok(());
    }
    let Some(&before) = model.get(&target) else {
        return Err(Error::UserNotFound);
    };
    let after = match op {
        Op::SetStatus(status) => Some((before.0, *status)),
        Op::SetAdmin(flag) => Some((*flag, before.1)),
        Op::Delete => None,
        Op::ResetPassword | Op::Register | Op::Decide(..) => Some(before),
    };
    let active = |user: (bool, UserStatus)| user.0 && user.1 == UserStatus::Approved;
    let loses_an_admin = active(before) && !after.is_some_and(active);
    if loses_an_admin && active_admins(model) <= 1 {
        return Err(Error::LastAdmin(match after {
            None => LastAdminChange::Delete,
            Some((false, _)) => LastAdminChange::Demote,
            Some(_) => LastAdminChange::Deactivate,
        }));
    }
    match after {
        Some(after) => model.insert(target, after),
        None => model.remove(&target),
    };
    Ok(())
}

/// An outcome as comparable text (`Error` holds sources, so it has no `PartialEq`).
fn outcome(result: &Result<(), Error>) -> String {
    match result {
        Ok(()) => "Ok".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn admin_operations_follow_the_rules_and_never_leave_zero_active_admins(steps in actions()) {
        let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
        let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
        let users = UserService::new(Arc::new(InMemoryStore::new()), Arc::new(PlainHasher), tokens);
        let password = Password::parse("tr0mbone-kettle").unwrap();
        let mut model = Model::new();
        let mut registered = 0u32;
        let mut register = |model: &mut Model| {
            registered += 1;
            let email = Email::parse(&format!("u{registered}@example.com")).unwrap();
            let user = users.register(email, &password, &Origin::default())?;
            // The first user is an approved admin, everyone after a pending user.
            let first = model.is_empty();
            assert_eq!((user.is_admin, user.status), if first {
                (true, UserStatus::Approved)
            } else {
                (false, UserStatus::Pending)
            });
            model.insert(user.id.get(), (user.is_admin, user.status));
            Ok::<(), Error>(())
        };
        for _ in 0..4 {
            register(&mut model).unwrap();
        }
        for (i, (actor, target, op)) in steps.into_iter().enumerate() {
            let actor = if actor == 0 { Actor::Operator } else { Actor::User(UserId::new(i64::from(actor)).unwrap()) };
            let target_id = UserId::new(i64::from(target)).unwrap();
            let want = expected(&mut model, actor, target_id.get(), &op);
            let origin = Origin::default();
            let got = match &op {
                Op::SetStatus(status) => users.update_user(actor, target_id, &UserChanges { status: Some(*status), ..UserChanges::default() }, &origin).map(drop),
                Op::SetAdmin(flag) => users.update_user(actor, target_id, &UserChanges { is_admin: Some(*flag), ..UserChanges::default() }, &origin).map(drop),
                Op::Delete => users.delete_user(actor, target_id, &origin),
                Op::ResetPassword => users.reset_password(actor, target_id, &password, &origin).map(drop),
                Op::Register => register(&mut model),
                Op::Decide(more, decision) => {
                    let mut ids = vec![target_id.get()];
                    ids.extend(more.iter().map(|&id| i64::from(id)).filter(|&id| id != target_id.get()));
                    users.decide(actor, &BulkIds::new(ids).unwrap(), *decision, None, &origin).map(drop)
                }
            };
            prop_assert_eq!(outcome(&got), outcome(&want), "step {}: {:?} by {:?} on {}", i, op, actor, target);

            let all = users.list_users(Actor::Operator, &UserQuery::default()).unwrap();
            let stored: Model = all.items.iter().map(|u| (u.id.get(), (u.is_admin, u.status))).collect();
            prop_assert_eq!(&stored, &model, "step {}: the store and the rules disagree", i);
            prop_assert!(active_admins(&stored) >= 1, "no active admin among {:?}", all.items);
        }
    }
}

/// The liveness half on its own terms: with two active admins, either may demote, disable
/// or delete the other, and any active admin approves a pending user.
#[test]
fn admin_operations_succeed_while_another_active_admin_remains() {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let users = UserService::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(PlainHasher),
        tokens,
    );
    let password = Password::parse("tr0mbone-kettle").unwrap();
    let origin = Origin::default();
    let new_admin = |name: &str| {
        let user = users
            .register(
                Email::parse(&format!("{name}@example.com")).unwrap(),
                &password,
                &origin,
            )
            .unwrap();
        let promote = UserChanges {
            is_admin: Some(true),
            status: Some(UserStatus::Approved),
            ..UserChanges::default()
        };
        users
            .update_user(Actor::Operator, user.id, &promote, &origin)
            .unwrap();
        user.id
    };
    let (a, b) = (new_admin("a"), new_admin("b"));
    let by = |id| Actor::User(id);
    let set =
        |actor, target, changes: UserChanges| users.update_user(actor, target, &changes, &origin);

    // Demote, then promote back.
    let demoted = set(
        by(a),
        b,
        UserChanges {
            is_admin: Some(false),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert!(!demoted.is_admin);
    assert!(matches!(
        set(
            by(a),
            a,
            UserChanges {
                is_admin: Some(false),
                ..UserChanges::default()
            }
        ),
        Err(Error::LastAdmin(LastAdminChange::Demote))
    ));
    set(
        Actor::Operator,
        b,
        UserChanges {
            is_admin: Some(true),
            ..UserChanges::default()
        },
    )
    .unwrap();

    // Disable, then enable back.
    let disabled = set(
        by(b),
        a,
        UserChanges {
            status: Some(UserStatus::Disabled),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert_eq!(disabled.status, UserStatus::Disabled);
    assert!(matches!(
        set(
            by(b),
            b,
            UserChanges {
                status: Some(UserStatus::Pending),
                ..UserChanges::default()
            }
        ),
        Err(Error::LastAdmin(LastAdminChange::Deactivate))
    ));
    set(
        by(b),
        a,
        UserChanges {
            status: Some(UserStatus::Approved),
            ..UserChanges::default()
        },
    )
    .unwrap();

    // Approve a pending user.
    let pending = users
        .register(
            Email::parse("pending@example.com").unwrap(),
            &password,
            &origin,
        )
        .unwrap();
    assert_eq!(pending.status, UserStatus::Pending);
    let approved = set(
        by(a),
        pending.id,
        UserChanges {
            status: Some(UserStatus::Approved),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert_eq!(
        (approved.status, approved.approved_by),
        (UserStatus::Approved, Some(a))
    );

    // Delete an admin while another remains; the last one stays.
    users.delete_user(by(a), b, &origin).unwrap();
    assert!(matches!(
        users.delete_user(by(a), a, &origin),
        Err(Error::LastAdmin(LastAdminChange::Delete))
    ));
}
