//! The user rules as pure functions over facts the use cases read inside their transaction.

use chrono::{DateTime, Utc};

use crate::{
    Error, Invitation, LastAdminChange, TokenClaims, User, UserChanges, UserId, UserStatus,
};

/// The role and status a newly registered user starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialRole {
    /// Whether the user becomes an admin.
    pub is_admin: bool,
    /// The status the user starts in.
    pub status: UserStatus,
}

/// Rule 1: the first user ever registered becomes an approved admin; everyone after is a
/// pending non-admin.
#[must_use]
pub fn role_for_new_user(existing_users: u64) -> InitialRole {
    if existing_users == 0 {
        InitialRole {
            is_admin: true,
            status: UserStatus::Approved,
        }
    } else {
        InitialRole {
            is_admin: false,
            status: UserStatus::Pending,
        }
    }
}

/// Rule 1 with an invitation (the approval issue): the first user is still the approved
/// admin; anyone else admitted by an invitation starts approved, an admin when the
/// invitation says so; without one, a pending non-admin.
#[must_use]
pub fn role_for_invited_user(existing_users: u64, invitation: Option<&Invitation>) -> InitialRole {
    match invitation {
        Some(invitation) if existing_users > 0 => InitialRole {
            is_admin: invitation.is_admin,
            status: UserStatus::Approved,
        },
        _ => role_for_new_user(existing_users),
    }
}

/// Rule 2: only approved users log in. Called only after the password was verified, so a
/// wrong password always gets the same answer whatever the account's state. A rejected
/// user is told so with the admin's note.
///
/// # Errors
/// [`Error::AccountPending`], [`Error::AccountDisabled`] or [`Error::AccountRejected`].
pub fn ensure_can_log_in(user: &User) -> Result<(), Error> {
    match user.status {
        UserStatus::Approved => Ok(()),
        UserStatus::Pending => Err(Error::AccountPending),
        UserStatus::Disabled => Err(Error::AccountDisabled),
        UserStatus::Rejected => Err(Error::AccountRejected {
            note: user.decision_note.clone(),
        }),
    }
}

/// Whether `user` waits in the approval queue (counted by `GET /users/pending/count`):
/// pending users only; a rejected one has had their answer.
#[must_use]
pub fn is_waiting(user: &User) -> bool {
    user.status == UserStatus::Pending
}

/// Whether a bulk decision may take `user`: only users still waiting. (A single `PUT` may
/// move anyone anywhere, the last-active-admin rule permitting.)
#[must_use]
pub fn may_decide_in_bulk(user: &User) -> bool {
    is_waiting(user)
}

/// Rules 2 and 5: a token grants access only while its user is approved and no password
/// reset has happened since it was issued.
///
/// # Errors
/// [`Error::Unauthenticated`] otherwise.
pub fn ensure_token_still_valid(user: &User, claims: &TokenClaims) -> Result<(), Error> {
    if user.id == claims.user_id
        && user.status == UserStatus::Approved
        && user.token_version == claims.token_version
    {
        Ok(())
    } else {
        Err(Error::Unauthenticated)
    }
}

/// The actor of an admin action must be an active admin right now.
///
/// # Errors
/// [`Error::Unauthenticated`] when the actor is gone or no longer approved,
/// [`Error::AdminRequired`] when the actor is not an admin.
pub fn ensure_admin(actor: Option<&User>) -> Result<(), Error> {
    match actor {
        None => Err(Error::Unauthenticated),
        Some(user) if user.status != UserStatus::Approved => Err(Error::Unauthenticated),
        Some(user) if !user.is_admin => Err(Error::AdminRequired),
        Some(_) => Ok(()),
    }
}

/// Applies an admin's changes to `before`. Approving a user for the first time records when
/// and by whom (`approved_by` is `None` when the operator at the CLI approves). Taking an
/// approved user out of service (disabled, rejected, back to pending) bumps their token
/// version, which ends every token they hold (and, with the sessions issue, their
/// sessions). A new email is not verified.
///
/// Every status is reachable from every other: rejecting records when and by whom
/// (`rejected_at`, `rejected_by`, kept while the user stays rejected); leaving `rejected`
/// clears them. `decision_note` is the note of the decision that put the user where they
/// are: a change to `approved` or `rejected` sets it to `changes.note` (repeating the
/// status without a note keeps the note there is); any other status clears it. A note
/// without such a status change is ignored here (the API refuses it).
#[must_use]
pub fn apply_changes(
    before: &User,
    changes: &UserChanges,
    acting_admin: Option<UserId>,
    now: DateTime<Utc>,
) -> User {
    let mut after = before.clone();
    if let Some(email) = &changes.email {
        if *email != before.email {
            after.email = email.clone();
            after.email_verified = false;
        }
    }
    if let Some(is_admin) = changes.is_admin {
        after.is_admin = is_admin;
    }
    if let Some(status) = changes.status {
        if before.status == UserStatus::Approved && status != UserStatus::Approved {
            // Out of service: every token issued so far ends here, so enabling the user
            // again never brings one back.
            after.token_version += 1;
        }
        after.status = status;
        if status == UserStatus::Approved && after.approved_at.is_none() {
            after.approved_at = Some(now);
            after.approved_by = acting_admin;
        }
        let repeated = before.status == status;
        if status == UserStatus::Rejected {
            if !repeated {
                after.rejected_at = Some(now);
                after.rejected_by = acting_admin;
            }
        } else {
            after.rejected_at = None;
            after.rejected_by = None;
        }
        after.decision_note = match status {
            UserStatus::Approved | UserStatus::Rejected => match &changes.note {
                Some(note) => Some(note.clone()),
                None if repeated => before.decision_note.clone(),
                None => None,
            },
            UserStatus::Pending | UserStatus::Disabled => None,
        };
    }
    after
}

/// Rule 3: once a user exists there is always at least one active admin.
///
/// `before` is the user as it is, `after` as it would be (`None` when deleted), and
/// `active_admins` the number of active admins now, `before` included. Only needs the count
/// when `before` is an active admin and `after` is not; pass anything otherwise.
///
/// # Errors
/// [`Error::LastAdmin`] naming the refused change.
pub fn ensure_active_admin_remains(
    before: &User,
    after: Option<&User>,
    active_admins: u64,
) -> Result<(), Error> {
    if !loses_active_admin(before, after) || active_admins > 1 {
        return Ok(());
    }
    let change = match after {
        None => LastAdminChange::Delete,
        Some(after) if !after.is_admin => LastAdminChange::Demote,
        Some(_) => LastAdminChange::Deactivate,
    };
    Err(Error::LastAdmin(change))
}

/// Whether the change takes an active admin away, so that the count must be read.
#[must_use]
pub fn loses_active_admin(before: &User, after: Option<&User>) -> bool {
    before.is_active_admin() && !after.is_some_and(User::is_active_admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invitation_approves_and_may_make_an_admin_but_the_first_user_is_the_admin() {
        let now = crate::now();
        let invitation = |is_admin| Invitation {
            id: 1,
            email: None,
            is_admin,
            note: None,
            created_at: now,
            created_by: None,
            expires_at: now,
            max_uses: 1,
            uses: 0,
            revoked_at: None,
        };
        let (member, admin) = (invitation(false), invitation(true));
        // (users before, invitation) → (is_admin, status)
        let table = [
            (0, None, (true, UserStatus::Approved)),
            (0, Some(&member), (true, UserStatus::Approved)),
            (0, Some(&admin), (true, UserStatus::Approved)),
            (3, None, (false, UserStatus::Pending)),
            (3, Some(&member), (false, UserStatus::Approved)),
            (3, Some(&admin), (true, UserStatus::Approved)),
        ];
        for (existing, invited, (is_admin, status)) in table {
            assert_eq!(
                role_for_invited_user(existing, invited),
                InitialRole { is_admin, status },
                "{existing} users, invitation {invited:?}"
            );
        }
    }
    use crate::{Email, PasswordHash};

    fn user(is_admin: bool, status: UserStatus) -> User {
        User {
            id: UserId::new(7).unwrap(),
            email: Email::parse("u@example.com").unwrap(),
            password_hash: PasswordHash::new("h".into()),
            is_admin,
            status,
            created_at: crate::now(),
            approved_at: None,
            approved_by: None,
            token_version: 0,
            reason: None,
            email_verified: false,
            mfa_enabled: false,
            rejected_at: None,
            rejected_by: None,
            decision_note: None,
        }
    }

    #[test]
    fn first_user_is_an_approved_admin_and_later_ones_wait() {
        assert_eq!(
            role_for_new_user(0),
            InitialRole {
                is_admin: true,
                status: UserStatus::Approved
            }
        );
        for existing in [1, 2, 1000] {
            assert_eq!(
                role_for_new_user(existing),
                InitialRole {
                    is_admin: false,
                    status: UserStatus::Pending
                }
            );
        }
    }

    #[test]
    fn only_approved_users_log_in() {
        assert!(ensure_can_log_in(&user(false, UserStatus::Approved)).is_ok());
        assert!(matches!(
            ensure_can_log_in(&user(false, UserStatus::Pending)),
            Err(Error::AccountPending)
        ));
        assert!(matches!(
            ensure_can_log_in(&user(true, UserStatus::Disabled)),
            Err(Error::AccountDisabled)
        ));
    }

    #[test]
    fn last_admin_table() {
        use LastAdminChange::*;
        use UserStatus::*;
        let admin = user(true, Approved);
        // (after, active admins, expected refusal)
        let cases: Vec<(Option<User>, u64, Option<LastAdminChange>)> = vec![
            (Some(user(false, Approved)), 1, Some(Demote)),
            (Some(user(false, Approved)), 2, None),
            (Some(user(true, Disabled)), 1, Some(Deactivate)),
            (Some(user(true, Pending)), 1, Some(Deactivate)),
            (Some(user(true, Disabled)), 2, None),
            (Some(user(false, Disabled)), 1, Some(Demote)),
            (None, 1, Some(Delete)),
            (None, 2, None),
            (Some(user(true, Approved)), 1, None),
        ];
        for (after, admins, expected) in cases {
            let got = ensure_active_admin_remains(&admin, after.as_ref(), admins);
            match expected {
                None => assert!(got.is_ok(), "{after:?} with {admins} admins"),
                Some(change) => assert!(
                    matches!(got, Err(Error::LastAdmin(c)) if c == change),
                    "{after:?} with {admins} admins: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn changes_to_non_admins_never_need_the_count() {
        for status in UserStatus::ALL {
            for admin_after in [false, true] {
                let before = user(false, status);
                let mut after = before.clone();
                after.is_admin = admin_after;
                assert!(!loses_active_admin(&before, Some(&after)));
                assert!(ensure_active_admin_remains(&before, Some(&after), 0).is_ok());
            }
            let disabled_admin = user(true, UserStatus::Disabled);
            assert!(ensure_active_admin_remains(&disabled_admin, None, 0).is_ok());
        }
    }

    #[test]
    fn first_approval_is_recorded_once() {
        let now = crate::now();
        let admin = UserId::new(1).unwrap();
        let approve = UserChanges {
            status: Some(UserStatus::Approved),
            ..UserChanges::default()
        };
        let approved = apply_changes(
            &user(false, UserStatus::Pending),
            &approve,
            Some(admin),
            now,
        );
        assert_eq!(approved.approved_at, Some(now));
        assert_eq!(approved.approved_by, Some(admin));

        let disable = UserChanges {
            status: Some(UserStatus::Disabled),
            ..UserChanges::default()
        };
        let disabled = apply_changes(&approved, &disable, Some(admin), now);
        let later = now + chrono::Duration::seconds(5);
        let other = UserId::new(2).unwrap();
        let re_enabled = apply_changes(&disabled, &approve, Some(other), later);
        assert_eq!(re_enabled.approved_at, Some(now));
        assert_eq!(re_enabled.approved_by, Some(admin));
    }

    #[test]
    fn leaving_service_ends_tokens_and_coming_back_revives_none() {
        let now = crate::now();
        let to = |status| UserChanges {
            status: Some(status),
            ..UserChanges::default()
        };
        let approved = user(false, UserStatus::Approved);
        for out in [UserStatus::Disabled, UserStatus::Pending] {
            let gone = apply_changes(&approved, &to(out), None, now);
            assert_eq!(gone.token_version, approved.token_version + 1, "{out}");
            let back = apply_changes(&gone, &to(UserStatus::Approved), None, now);
            assert_eq!(back.token_version, gone.token_version, "{out}");
        }
        // Approving a pending user or disabling a disabled one changes no version.
        let pending = user(false, UserStatus::Pending);
        let approved_now = apply_changes(&pending, &to(UserStatus::Approved), None, now);
        assert_eq!(approved_now.token_version, pending.token_version);
        let disabled = user(false, UserStatus::Disabled);
        let still = apply_changes(&disabled, &to(UserStatus::Disabled), None, now);
        assert_eq!(still.token_version, disabled.token_version);
        // Other changes to an approved user keep its tokens.
        let promoted = apply_changes(
            &approved,
            &UserChanges {
                is_admin: Some(true),
                ..UserChanges::default()
            },
            None,
            now,
        );
        assert_eq!(promoted.token_version, approved.token_version);
    }

    /// Every status to every status, by an admin and by the operator, with and without a
    /// note: what is recorded, what ends, what the user is told at login.
    #[test]
    fn every_status_transition_by_every_kind_of_actor() {
        use UserStatus::*;
        let now = crate::now();
        let earlier = now - chrono::Duration::hours(1);
        let admin = UserId::new(1).unwrap();
        for from in UserStatus::ALL {
            for to in UserStatus::ALL {
                for actor in [Some(admin), None] {
                    for note in [None, Some("see you in May".to_owned())] {
                        let mut before = user(false, from);
                        if from == Rejected {
                            before.rejected_at = Some(earlier);
                            before.rejected_by = Some(UserId::new(9).unwrap());
                            before.decision_note = Some("old note".into());
                        }
                        let changes = UserChanges {
                            status: Some(to),
                            note: note.clone(),
                            ..UserChanges::default()
                        };
                        let after = apply_changes(&before, &changes, actor, now);
                        let case = format!("{from} -> {to} by {actor:?} with {note:?}");
                        assert_eq!(after.status, to, "{case}");
                        // Leaving approved ends every token; nothing else does.
                        let bumped = from == Approved && to != Approved;
                        assert_eq!(
                            after.token_version,
                            before.token_version + i64::from(bumped),
                            "{case}"
                        );
                        // Rejection is recorded once, and forgotten on leaving it.
                        match (from, to) {
                            (Rejected, Rejected) => {
                                assert_eq!(after.rejected_at, Some(earlier), "{case}");
                                assert_eq!(after.rejected_by, before.rejected_by, "{case}");
                            }
                            (_, Rejected) => {
                                assert_eq!(after.rejected_at, Some(now), "{case}");
                                assert_eq!(after.rejected_by, actor, "{case}");
                            }
                            _ => {
                                assert_eq!(after.rejected_at, None, "{case}");
                                assert_eq!(after.rejected_by, None, "{case}");
                            }
                        }
                        // The note goes with decisions; repeating one keeps its note.
                        let expected_note = match to {
                            Approved | Rejected => note.clone().or_else(|| {
                                (from == to).then(|| before.decision_note.clone()).flatten()
                            }),
                            Pending | Disabled => None,
                        };
                        assert_eq!(after.decision_note, expected_note, "{case}");
                        // Who waits, and who gets in.
                        assert_eq!(is_waiting(&after), to == Pending, "{case}");
                        assert_eq!(may_decide_in_bulk(&after), to == Pending, "{case}");
                        match (to, ensure_can_log_in(&after)) {
                            (Approved, Ok(())) | (Pending, Err(Error::AccountPending)) => {}
                            (Disabled, Err(Error::AccountDisabled)) => {}
                            (Rejected, Err(Error::AccountRejected { note: told })) => {
                                assert_eq!(told, expected_note, "{case}");
                            }
                            (_, other) => panic!("{case}: login gives {other:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rejecting_or_approving_the_last_admin_is_guarded_like_any_other_exit() {
        let admin = user(true, UserStatus::Approved);
        let reject = UserChanges {
            status: Some(UserStatus::Rejected),
            ..UserChanges::default()
        };
        let rejected = apply_changes(&admin, &reject, None, crate::now());
        assert!(loses_active_admin(&admin, Some(&rejected)));
        assert!(matches!(
            ensure_active_admin_remains(&admin, Some(&rejected), 1),
            Err(Error::LastAdmin(LastAdminChange::Deactivate))
        ));
        assert!(ensure_active_admin_remains(&admin, Some(&rejected), 2).is_ok());
    }

    #[test]
    fn a_new_email_is_not_verified() {
        let mut verified = user(false, UserStatus::Approved);
        verified.email_verified = true;
        let same = UserChanges {
            email: Some(verified.email.clone()),
            ..UserChanges::default()
        };
        assert!(apply_changes(&verified, &same, None, crate::now()).email_verified);
        let other = UserChanges {
            email: Some(crate::Email::parse("new@example.com").unwrap()),
            ..UserChanges::default()
        };
        assert!(!apply_changes(&verified, &other, None, crate::now()).email_verified);
    }

    #[test]
    fn admin_actor_must_be_an_approved_admin() {
        assert!(ensure_admin(Some(&user(true, UserStatus::Approved))).is_ok());
        assert!(matches!(ensure_admin(None), Err(Error::Unauthenticated)));
        assert!(matches!(
            ensure_admin(Some(&user(true, UserStatus::Disabled))),
            Err(Error::Unauthenticated)
        ));
        assert!(matches!(
            ensure_admin(Some(&user(false, UserStatus::Approved))),
            Err(Error::AdminRequired)
        ));
    }
}
