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
/// wrong password always gets the same answer whatever the account's state.
///
/// # Errors
/// [`Error::AccountPending`] or [`Error::AccountDisabled`].
pub fn ensure_can_log_in(user: &User) -> Result<(), Error> {
    match user.status {
        UserStatus::Approved => Ok(()),
        UserStatus::Pending => Err(Error::AccountPending),
        UserStatus::Disabled => Err(Error::AccountDisabled),
    }
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
/// approved user out of service (disabled, back to pending) bumps their token version, which
/// ends every token they hold.
#[must_use]
pub fn apply_changes(
    before: &User,
    changes: &UserChanges,
    acting_admin: Option<UserId>,
    now: DateTime<Utc>,
) -> User {
    let mut after = before.clone();
    if let Some(email) = &changes.email {
        after.email = email.clone();
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
