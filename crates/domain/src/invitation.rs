//! Invitations (the approval issue, "Approval queue and invitations" in API.md): a code an
//! admin hands out so that someone may register without waiting in the queue.
//!
//! This module holds what an invitation *is*, free of storage and HTTP: the code (at least
//! 128 random bits, shown once, stored as its SHA-256 only), the limits an admin may set
//! (`expires_in` 1 minute to 90 days; `max_uses` 1 to 1000, exactly 1 when the invitation
//! names an email), the status an invitation has at a given moment, and whether it admits a
//! given registration. Counting a use happens in the registration's own transaction (the
//! repository's job); the rule it applies is [`Invitation::admits`].

use std::fmt;

use crate::random::sha256_hex;
use crate::{Email, Error, UserId};
use chrono::{DateTime, Duration, Utc};

/// The alphabet of codes: Crockford's base 32 in lower case (no `i`, `l`, `o`, `u`), so a
/// code read aloud or copied by hand survives.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Random bytes per code: 160 bits, 32 characters.
const CODE_BYTES: usize = 20;

/// An invitation code as the invitee holds it. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct InvitationCode(String);

impl InvitationCode {
    /// The characters of a generated code.
    pub const LEN: usize = CODE_BYTES * 8 / 5;

    /// A new random code (160 bits).
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; CODE_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal("system randomness", e))?;
        Ok(Self(encode(&bytes)))
    }

    /// A code as someone typed or pasted it: surrounding space, hyphens and spaces inside,
    /// and upper case are forgiven, as are `i`/`l` for `1` and `o` for `0` (Crockford's
    /// rules). `None` for text that cannot be a code (wrong length or characters), which is
    /// answered as any invalid invitation.
    #[must_use]
    pub fn presented(raw: &str) -> Option<Self> {
        read_crockford(raw, Self::LEN).map(Self)
    }

    /// The code itself, for the one response that shows it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hex SHA-256 under which the code is stored: a copy of the database holds no
    /// usable code. (160 random bits need no slow hash.)
    #[must_use]
    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for InvitationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvitationCode(***)")
    }
}

/// The low `5 * len` bits of `bits` as `len` characters of [`ALPHABET`], most significant
/// first.
pub(crate) fn crockford_digits(bits: u64, len: usize) -> String {
    (0..len)
        .rev()
        .map(|i| {
            let index = usize::try_from((bits >> (i * 5)) & 31).unwrap_or(0);
            char::from(ALPHABET[index])
        })
        .collect()
}

/// A code of `len` characters of [`ALPHABET`] as someone typed or pasted it, in lower
/// case: surrounding space, hyphens and spaces inside, and upper case are forgiven, as are
/// `i`/`l` for `1` and `o` for `0` (Crockford's rules). `None` for anything else.
pub(crate) fn read_crockford(raw: &str, len: usize) -> Option<String> {
    if raw.len() > 4 * len {
        return None;
    }
    let mut code = String::with_capacity(len);
    for c in raw.trim().chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'i' | 'l' => '1',
            'o' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        code.push(c);
    }
    (code.len() == len).then_some(code)
}

/// Base 32 of `bytes` (whose length is a multiple of 5), most significant bits first.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for chunk in bytes.chunks(5) {
        let mut group = [0u8; 5];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = group.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        for i in (0..8).rev() {
            let index = usize::try_from((bits >> (i * 5)) & 31).unwrap_or(0);
            out.push(char::from(ALPHABET[index]));
        }
    }
    out
}

/// What an admin asks for when creating an invitation, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRequest {
    /// The one email that may use it, if any.
    pub email: Option<Email>,
    /// Whether the invitee becomes an admin.
    pub is_admin: bool,
    /// How long it stays valid ([`InvitationRequest::DEFAULT_EXPIRES_IN`] unless given).
    pub expires_in: Duration,
    /// How many registrations it admits (1 unless given).
    pub max_uses: u32,
    /// The admin's note.
    pub note: Option<String>,
}

/// Why an invitation request was refused, per field (the API's 422 names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInvitationRequest {
    /// `expires_in` outside 1 minute to 90 days.
    #[error("expires_in must be from 1 minute to 90 days")]
    ExpiresIn,
    /// `max_uses` outside 1 to 1000.
    #[error("max_uses must be from 1 to 1000")]
    MaxUses,
    /// `max_uses` other than 1 on an invitation for one email.
    #[error("an invitation for one email is used once: max_uses must be 1")]
    MaxUsesWithEmail,
    /// A note longer than [`InvitationRequest::MAX_NOTE`] characters.
    #[error("note must be at most 500 characters")]
    Note,
}

impl InvalidInvitationRequest {
    /// The request field at fault.
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::ExpiresIn => "expires_in",
            Self::MaxUses | Self::MaxUsesWithEmail => "max_uses",
            Self::Note => "note",
        }
    }
}

/// An [`InvitationRequest`] without problems (made by [`InvitationRequest::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidInvitationRequest(InvitationRequest);

impl ValidInvitationRequest {
    /// The request.
    #[must_use]
    pub fn get(&self) -> &InvitationRequest {
        &self.0
    }
}

impl InvitationRequest {
    /// The request, once it has no [`problems`](Self::problems).
    ///
    /// # Errors
    /// Every problem found.
    pub fn validate(self) -> Result<ValidInvitationRequest, Vec<InvalidInvitationRequest>> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(ValidInvitationRequest(self))
        } else {
            Err(problems)
        }
    }

    /// How long an invitation stays valid unless asked otherwise.
    pub const DEFAULT_EXPIRES_IN: Duration = Duration::days(7);
    /// The shortest validity.
    pub const MIN_EXPIRES_IN: Duration = Duration::minutes(1);
    /// The longest validity.
    pub const MAX_EXPIRES_IN: Duration = Duration::days(90);
    /// The most registrations one invitation admits.
    pub const MAX_USES: u32 = 1000;
    /// The longest note, in characters.
    pub const MAX_NOTE: usize = 500;

    /// The request's problems, every one (empty: it may be created).
    #[must_use]
    pub fn problems(&self) -> Vec<InvalidInvitationRequest> {
        let mut problems = Vec::new();
        if self.expires_in < Self::MIN_EXPIRES_IN || self.expires_in > Self::MAX_EXPIRES_IN {
            problems.push(InvalidInvitationRequest::ExpiresIn);
        }
        if !(1..=Self::MAX_USES).contains(&self.max_uses) {
            problems.push(InvalidInvitationRequest::MaxUses);
        } else if self.email.is_some() && self.max_uses != 1 {
            problems.push(InvalidInvitationRequest::MaxUsesWithEmail);
        }
        if self
            .note
            .as_ref()
            .is_some_and(|note| note.chars().count() > Self::MAX_NOTE)
        {
            problems.push(InvalidInvitationRequest::Note);
        }
        problems
    }
}

/// An invitation to store: a checked [`InvitationRequest`] with its code's hash and when
/// and by whom it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    /// [`InvitationCode::hash`] of its code.
    pub code_hash: String,
    /// The one email that may use it, if any.
    pub email: Option<Email>,
    /// Whether the invitee becomes an admin.
    pub is_admin: bool,
    /// The admin's note.
    pub note: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The admin who created it (`None` from the CLI).
    pub created_by: Option<UserId>,
    /// When it stops admitting registrations.
    pub expires_at: DateTime<Utc>,
    /// How many registrations it admits (1 to 1000).
    pub max_uses: u32,
}

/// Where an invitation stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    /// It admits registrations.
    Active,
    /// Every use is spent.
    Used,
    /// Its time ran out.
    Expired,
    /// An admin revoked it (it is kept for the record).
    Revoked,
}

impl InvitationStatus {
    /// The status as the API spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// Why a string is not an invitation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status must be one of active, used, expired, revoked")]
pub struct InvalidInvitationStatus;

impl std::str::FromStr for InvitationStatus {
    type Err = InvalidInvitationStatus;

    /// Exactly `active`, `used`, `expired` or `revoked`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        [Self::Active, Self::Used, Self::Expired, Self::Revoked]
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or(InvalidInvitationStatus)
    }
}

/// Why a text is not a validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a number and a unit, s, m, h or d (\"7d\"), from 1 minute to 90 days")]
pub struct InvalidExpiresIn;

/// Reads an invitation's `expires_in`: digits and one unit, `s`, `m`, `h` or `d` (`90m`,
/// `7d`), or digits alone for seconds (as `GATEHOUSE_TOKEN_TTL` reads them); whether it is
/// within bounds is [`InvitationRequest::problems`]' question.
///
/// # Errors
/// [`InvalidExpiresIn`] for anything else (a sign, a fraction, spaces inside, no unit).
pub fn parse_expires_in(raw: &str) -> Result<Duration, InvalidExpiresIn> {
    let raw = raw.trim();
    let Some(last) = raw.chars().last() else {
        return Err(InvalidExpiresIn);
    };
    let (digits, unit) = if last.is_ascii_digit() {
        (raw, 's')
    } else {
        (&raw[..raw.len() - last.len_utf8()], last)
    };
    let scale: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 24 * 3600,
        _ => return Err(InvalidExpiresIn),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidExpiresIn);
    }
    let count: i64 = digits.parse().map_err(|_| InvalidExpiresIn)?;
    count
        .checked_mul(scale)
        .map(Duration::seconds)
        .ok_or(InvalidExpiresIn)
}

/// Which invitations to list (newest first), and which page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvitationQuery {
    /// Only those with this status at the moment of the listing.
    pub status: Option<InvitationStatus>,
    /// At most this many; all when `None`.
    pub limit: Option<u64>,
    /// Skip this many first.
    pub offset: u64,
}

/// A stored invitation (its code is stored only as [`InvitationCode::hash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Its id.
    pub id: i64,
    /// The one email that may use it, if any.
    pub email: Option<Email>,
    /// Whether the invitee becomes an admin.
    pub is_admin: bool,
    /// The admin's note.
    pub note: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The admin who created it (`None` once that user is deleted, or from the CLI).
    pub created_by: Option<UserId>,
    /// When it stops admitting registrations.
    pub expires_at: DateTime<Utc>,
    /// How many registrations it admits.
    pub max_uses: u32,
    /// How many it admitted.
    pub uses: u32,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why an invitation does not admit a registration. One answer for every reason (the API's
/// 422 `invalid_invitation`): whoever tries codes learns nothing about which exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid invitation")]
pub struct InvalidInvitation;

impl Invitation {
    /// Its status at `now`: revoked before used, used before expired.
    #[must_use]
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if self.uses >= self.max_uses {
            InvitationStatus::Used
        } else if now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Active
        }
    }

    /// Whether it admits the registration of `email` at `now`: active, and for that email
    /// when it names one. The caller counts the use in the same transaction.
    ///
    /// # Errors
    /// [`InvalidInvitation`], whatever the reason.
    pub fn admits(&self, email: &Email, now: DateTime<Utc>) -> Result<(), InvalidInvitation> {
        let for_them = self.email.as_ref().is_none_or(|named| named == email);
        if self.status(now) == InvitationStatus::Active && for_them {
            Ok(())
        } else {
            Err(InvalidInvitation)
        }
    }
}

/// The console's registration link for `code`, under the console's address `base`
/// (`GATEHOUSE_PUBLIC_URL`): the invitation's `url` in the API and the link in its mail.
#[must_use]
pub fn invitation_link(base: &str, code: &InvitationCode) -> String {
    format!(
        "{}/#/register?invitation={}",
        base.trim_end_matches('/'),
        code.expose()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_periods_read_digits_and_a_unit() {
        for (raw, seconds) in [
            ("60s", 60),
            ("120", 120),
            ("1m", 60),
            ("90m", 5400),
            ("2h", 7200),
            ("7d", 604_800),
            (" 90d ", 7_776_000),
        ] {
            assert_eq!(
                parse_expires_in(raw),
                Ok(Duration::seconds(seconds)),
                "{raw}"
            );
        }
        for bad in [
            "",
            "d",
            "-1d",
            "+1d",
            "1.5d",
            "1 d",
            "7w",
            "7D",
            "१d",
            "9999999999999d",
        ] {
            assert_eq!(parse_expires_in(bad), Err(InvalidExpiresIn), "{bad:?}");
        }
    }

    #[test]
    fn invitation_statuses_round_trip() {
        for status in [
            InvitationStatus::Active,
            InvitationStatus::Used,
            InvitationStatus::Expired,
            InvitationStatus::Revoked,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert_eq!(
            "Active".parse::<InvitationStatus>(),
            Err(InvalidInvitationStatus)
        );
    }

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    fn invitation(now: DateTime<Utc>) -> Invitation {
        Invitation {
            id: 1,
            email: None,
            is_admin: false,
            note: None,
            created_at: now,
            created_by: None,
            expires_at: now + Duration::days(7),
            max_uses: 2,
            uses: 0,
            revoked_at: None,
        }
    }

    fn request() -> InvitationRequest {
        InvitationRequest {
            email: None,
            is_admin: false,
            expires_in: InvitationRequest::DEFAULT_EXPIRES_IN,
            max_uses: 1,
            note: None,
        }
    }

    #[test]
    fn codes_carry_160_random_bits_in_an_unambiguous_alphabet() {
        let a = InvitationCode::generate().unwrap();
        let b = InvitationCode::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), InvitationCode::LEN);
        assert_eq!(InvitationCode::LEN * 5, 160);
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)), "{a:?}");
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn base32_is_crockfords() {
        assert_eq!(encode(&[0; 5]), "00000000");
        assert_eq!(encode(&[0xff; 5]), "zzzzzzzz");
        // 0x0842108421 is 00001 repeated: every character is "1".
        assert_eq!(encode(&[0x08, 0x42, 0x10, 0x84, 0x21]), "11111111");
    }

    #[test]
    fn a_presented_code_forgives_what_people_do_to_codes() {
        let code = InvitationCode::generate().unwrap();
        let shown = code.expose();
        let grouped = shown
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("-");
        for typed in [
            shown.to_owned(),
            shown.to_uppercase(),
            format!("  {grouped}\n"),
            grouped.replace('-', " "),
        ] {
            assert_eq!(
                InvitationCode::presented(&typed),
                Some(code.clone()),
                "{typed}"
            );
        }
        let ambiguous = "o".repeat(16) + &"l".repeat(8) + &"I".repeat(8);
        let clear = "0".repeat(16) + &"1".repeat(16);
        assert_eq!(
            InvitationCode::presented(&ambiguous).map(|c| c.hash()),
            InvitationCode::presented(&clear).map(|c| c.hash())
        );
        for bad in [
            "",
            "short",
            &"u".repeat(32),
            &"0".repeat(33),
            "é".repeat(32).as_str(),
        ] {
            assert_eq!(InvitationCode::presented(bad), None, "{bad}");
        }
        assert_eq!(InvitationCode::presented(&"-".repeat(10_000)), None);
    }

    #[test]
    fn request_limits() {
        assert!(request().problems().is_empty());
        let cases: Vec<(InvitationRequest, Vec<InvalidInvitationRequest>)> = vec![
            (
                InvitationRequest {
                    expires_in: Duration::seconds(59),
                    ..request()
                },
                vec![InvalidInvitationRequest::ExpiresIn],
            ),
            (
                InvitationRequest {
                    expires_in: Duration::days(90) + Duration::seconds(1),
                    ..request()
                },
                vec![InvalidInvitationRequest::ExpiresIn],
            ),
            (
                InvitationRequest {
                    max_uses: 0,
                    ..request()
                },
                vec![InvalidInvitationRequest::MaxUses],
            ),
            (
                InvitationRequest {
                    max_uses: 1001,
                    ..request()
                },
                vec![InvalidInvitationRequest::MaxUses],
            ),
            (
                InvitationRequest {
                    email: Some(email("ann@example.com")),
                    max_uses: 2,
                    ..request()
                },
                vec![InvalidInvitationRequest::MaxUsesWithEmail],
            ),
            (
                InvitationRequest {
                    note: Some("n".repeat(501)),
                    expires_in: Duration::zero(),
                    ..request()
                },
                vec![
                    InvalidInvitationRequest::ExpiresIn,
                    InvalidInvitationRequest::Note,
                ],
            ),
        ];
        for (asked, problems) in cases {
            assert_eq!(asked.problems(), problems, "{asked:?}");
        }
        for fine in [
            InvitationRequest {
                expires_in: Duration::minutes(1),
                max_uses: 1000,
                note: Some("é".repeat(500)),
                ..request()
            },
            InvitationRequest {
                expires_in: Duration::days(90),
                email: Some(email("ann@example.com")),
                ..request()
            },
        ] {
            assert!(fine.problems().is_empty(), "{fine:?}");
        }
        assert_eq!(
            InvalidInvitationRequest::MaxUsesWithEmail.field(),
            "max_uses"
        );
    }

    #[test]
    fn status_and_admission() {
        let now = crate::now();
        let ann = email("ann@example.com");
        let bob = email("bob@example.com");
        let open = invitation(now);
        assert_eq!(open.status(now), InvitationStatus::Active);
        assert_eq!(open.admits(&ann, now), Ok(()));

        let named = Invitation {
            email: Some(ann.clone()),
            max_uses: 1,
            ..invitation(now)
        };
        assert_eq!(named.admits(&ann, now), Ok(()));
        assert_eq!(named.admits(&bob, now), Err(InvalidInvitation));

        let used = Invitation {
            uses: 2,
            ..invitation(now)
        };
        assert_eq!(used.status(now), InvitationStatus::Used);
        assert_eq!(used.admits(&ann, now), Err(InvalidInvitation));

        let later = now + Duration::days(7);
        assert_eq!(open.status(later), InvitationStatus::Expired);
        assert_eq!(open.admits(&ann, later), Err(InvalidInvitation));

        // Revoked wins over used, used over expired.
        let revoked = Invitation {
            revoked_at: Some(now),
            uses: 2,
            ..invitation(now)
        };
        assert_eq!(revoked.status(later), InvitationStatus::Revoked);
        assert_eq!(used.status(later), InvitationStatus::Used);
        assert_eq!(revoked.admits(&ann, now), Err(InvalidInvitation));
        for (status, text) in [
            (InvitationStatus::Active, "active"),
            (InvitationStatus::Used, "used"),
            (InvitationStatus::Expired, "expired"),
            (InvitationStatus::Revoked, "revoked"),
        ] {
            assert_eq!(status.as_str(), text);
        }
    }
}
