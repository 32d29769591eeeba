//! The approval queue's values (the approval issue, "Approval queue and invitations" in
//! API.md), free of storage and HTTP: who may register on their own under each
//! registration mode, the short free texts people write into the queue (an applicant's
//! reason, an admin's note), and the ids of a bulk decision.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// `GATEHOUSE_REGISTRATION`: who may register without an admin's invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// Anyone may register, and waits for approval (the default).
    #[default]
    Open,
    /// Only with a valid invitation.
    InviteOnly,
    /// Nobody registers on their own (admins create accounts).
    Closed,
}

/// Why a string is not a registration mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of open, invite_only, closed")]
pub struct InvalidRegistrationMode;

impl RegistrationMode {
    /// The mode as configured and shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::InviteOnly => "invite_only",
            Self::Closed => "closed",
        }
    }
}

impl FromStr for RegistrationMode {
    type Err = InvalidRegistrationMode;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "invite_only" => Ok(Self::InviteOnly),
            "closed" => Ok(Self::Closed),
            _ => Err(InvalidRegistrationMode),
        }
    }
}

/// A self-registration the mode does not allow (the API's 403 `registration_closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Registration is closed")]
pub struct RegistrationClosed;

/// Whether someone may register on their own under `mode`: the very first user always may
/// (someone must become the admin), whatever the mode; `invite_only` asks for an
/// invitation (whether it is valid is [`crate::Invitation::admits`]'s question, asked in
/// the same transaction); `closed` refuses everyone else, invitation or not.
///
/// # Errors
/// [`RegistrationClosed`].
pub fn ensure_may_self_register(
    mode: RegistrationMode,
    first_user: bool,
    with_invitation: bool,
) -> Result<(), RegistrationClosed> {
    match mode {
        _ if first_user => Ok(()),
        RegistrationMode::Open => Ok(()),
        RegistrationMode::InviteOnly if with_invitation => Ok(()),
        RegistrationMode::InviteOnly | RegistrationMode::Closed => Err(RegistrationClosed),
    }
}

/// A short text a person writes into the queue: an applicant's reason, an admin's note on a
/// decision or an invitation. At most [`FreeText::MAX_CHARS`] characters as sent; line
/// breaks are kept (`\r\n` and a lone `\r` become `\n`), every other control character (a
/// tab too) and the bidirectional overrides are refused, wherever they are (they hide or
/// reorder text in the console and in logs). The checks read the text as sent, so they say
/// the same as the API's schema; then surrounding whitespace is trimmed, and an empty text
/// is no text.
#[derive(Clone, PartialEq, Eq)]
pub struct FreeText(String);

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFreeText {
    /// Longer than [`FreeText::MAX_CHARS`].
    #[error("must be at most 500 characters")]
    TooLong,
    /// A control character other than a line break.
    #[error("must not contain control characters other than line breaks")]
    ControlCharacter,
    /// A bidirectional embedding, override or isolate (U+202A to U+202E, U+2066 to
    /// U+2069): they make text read in another order than it is written.
    #[error("must not contain bidirectional override or isolate characters")]
    BidiOverride,
}

impl FreeText {
    /// The longest text, in characters (Unicode scalar values).
    pub const MAX_CHARS: usize = 500;

    /// Checks `raw` as sent; `Ok(None)` when it is empty once trimmed.
    ///
    /// # Errors
    /// [`InvalidFreeText`].
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidFreeText> {
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
        {
            return Err(InvalidFreeText::ControlCharacter);
        }
        if raw
            .chars()
            .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        {
            return Err(InvalidFreeText::BidiOverride);
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidFreeText::TooLong);
        }
        let text = raw.trim();
        Ok((!text.is_empty()).then(|| Self(text.replace("\r\n", "\n").replace('\r', "\n"))))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FreeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What an admin decides about pending users (`POST /users/decisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let them in.
    Approve,
    /// Turn them down.
    Reject,
}

/// Why a string is not a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decision must be approve or reject")]
pub struct InvalidDecision;

impl Decision {
    /// The status a decided user ends in.
    #[must_use]
    pub fn status(self) -> crate::UserStatus {
        match self {
            Self::Approve => crate::UserStatus::Approved,
            Self::Reject => crate::UserStatus::Rejected,
        }
    }
}

impl FromStr for Decision {
    type Err = InvalidDecision;

    /// Exactly `approve` or `reject`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            _ => Err(InvalidDecision),
        }
    }
}

/// The users of one bulk decision: 1 to [`BulkIds::MAX`] distinct ids, in the order given
/// (the answer lists the users in that order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkIds(Vec<i64>);

/// Why a list of ids cannot be decided in bulk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBulkIds {
    /// No id.
    #[error("ids must name at least one user")]
    Empty,
    /// More than [`BulkIds::MAX`].
    #[error("ids may name at most 100 users")]
    TooMany,
    /// An id twice (each listed once).
    #[error("ids must be distinct: {0} is listed twice")]
    Repeated(i64),
    /// An id that no user can have.
    #[error("ids must be positive: {0} is not")]
    NotPositive(i64),
}

impl BulkIds {
    /// The most users one decision takes.
    pub const MAX: usize = 100;

    /// Checks `ids`.
    ///
    /// # Errors
    /// [`InvalidBulkIds`], the first problem found.
    pub fn new(ids: Vec<i64>) -> Result<Self, InvalidBulkIds> {
        if ids.is_empty() {
            return Err(InvalidBulkIds::Empty);
        }
        if ids.len() > Self::MAX {
            return Err(InvalidBulkIds::TooMany);
        }
        let mut seen = HashSet::with_capacity(ids.len());
        for &id in &ids {
            if id <= 0 {
                return Err(InvalidBulkIds::NotPositive(id));
            }
            if !seen.insert(id) {
                return Err(InvalidBulkIds::Repeated(id));
            }
        }
        Ok(Self(ids))
    }

    /// The ids, in the order given.
    #[must_use]
    pub fn ids(&self) -> &[i64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_modes_parse_and_print() {
        for mode in [
            RegistrationMode::Open,
            RegistrationMode::InviteOnly,
            RegistrationMode::Closed,
        ] {
            assert_eq!(mode.as_str().parse(), Ok(mode));
        }
        assert_eq!(" Invite_Only ".parse(), Ok(RegistrationMode::InviteOnly));
        assert_eq!(RegistrationMode::default(), RegistrationMode::Open);
        for bad in ["", "invite-only", "invite", "none"] {
            assert_eq!(
                bad.parse::<RegistrationMode>(),
                Err(InvalidRegistrationMode)
            );
        }
    }

    #[test]
    fn who_may_register_under_each_mode() {
        use RegistrationMode::{Closed, InviteOnly, Open};
        // (mode, first user, with an invitation) → allowed
        let table = [
            (Open, false, false, true),
            (Open, false, true, true),
            (Open, true, false, true),
            (InviteOnly, false, false, false),
            (InviteOnly, false, true, true),
            (InviteOnly, true, false, true),
            (Closed, false, false, false),
            (Closed, false, true, false),
            (Closed, true, false, true),
            (Closed, true, true, true),
        ];
        for (mode, first, invited, allowed) in table {
            assert_eq!(
                ensure_may_self_register(mode, first, invited).is_ok(),
                allowed,
                "{mode:?}, first user {first}, invitation {invited}"
            );
        }
    }

    #[test]
    fn free_text_keeps_line_breaks_and_refuses_other_controls() {
        assert_eq!(FreeText::parse("   "), Ok(None));
        let text = FreeText::parse("  I run the\r\nbook club\nat work  ")
            .unwrap()
            .unwrap();
        assert_eq!(text.as_str(), "I run the\nbook club\nat work");
        assert_eq!(
            FreeText::parse(&"é".repeat(500)).unwrap().unwrap().as_str(),
            "é".repeat(500)
        );
        assert_eq!(
            FreeText::parse(&"a".repeat(501)),
            Err(InvalidFreeText::TooLong)
        );
        // Counted as sent, spaces included.
        assert_eq!(
            FreeText::parse(&format!("{} ", "a".repeat(500))),
            Err(InvalidFreeText::TooLong)
        );
        // API.md: newlines allowed, other control characters (a tab too) refused.
        // Wherever they are: trimming comes after the checks.
        for bad in [
            "a\u{0}b",
            "a\u{1b}[31mred",
            "a\u{7f}",
            "a\u{85}b",
            "a\tb",
            "\t",
            "trailing\u{b}",
            "\u{85}leading",
        ] {
            assert_eq!(
                FreeText::parse(bad),
                Err(InvalidFreeText::ControlCharacter),
                "{bad:?}"
            );
        }
        for bad in ["pay \u{202e}gpj.exe", "a\u{2066}b\u{2069}"] {
            assert_eq!(
                FreeText::parse(bad),
                Err(InvalidFreeText::BidiOverride),
                "{bad:?}"
            );
        }
        // Right-to-left text itself, and its marks, are fine.
        assert!(FreeText::parse("שלום \u{200f}עולם").unwrap().is_some());
    }

    #[test]
    fn bulk_ids_are_one_to_a_hundred_distinct_positive_ids_in_order() {
        assert_eq!(BulkIds::new(vec![3, 1, 2]).unwrap().ids(), &[3, 1, 2]);
        assert!(BulkIds::new((1..=100).collect()).is_ok());
        assert_eq!(BulkIds::new(vec![]), Err(InvalidBulkIds::Empty));
        assert_eq!(
            BulkIds::new((1..=101).collect()),
            Err(InvalidBulkIds::TooMany)
        );
        assert_eq!(
            BulkIds::new(vec![1, 2, 1]),
            Err(InvalidBulkIds::Repeated(1))
        );
        assert_eq!(
            BulkIds::new(vec![1, 0]),
            Err(InvalidBulkIds::NotPositive(0))
        );
    }
}
