//! The tables, written by hand with the column types both backends share.

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        status -> Text,
        created_at -> Timestamp,
        approved_at -> Nullable<Timestamp>,
        approved_by -> Nullable<BigInt>,
        token_version -> BigInt,
        /// `Email::skeleton` of `email`; NULL only in rows from before the column, until the
        /// start-up backfill (`backfill.rs`) fills it in.
        email_skeleton -> Nullable<Text>,
        reason -> Nullable<Text>,
        email_verified -> Bool,
        mfa_enabled -> Bool,
        rejected_at -> Nullable<Timestamp>,
        rejected_by -> Nullable<BigInt>,
        decision_note -> Nullable<Text>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    /// One row per login (the sessions issue).
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        idle_expires_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    /// Refresh tokens by their SHA-256: a session's current one and its spent ones.
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> BigInt,
        issued_at -> Timestamp,
        spent_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::table! {
    throttle_counters (scope, counter_key) {
        scope -> Text,
        counter_key -> Text,
        count -> BigInt,
        since -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        action -> Text,
        actor_id -> Nullable<BigInt>,
        target_id -> Nullable<BigInt>,
        address -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        seed -> Text,
        created_at -> Timestamp,
        activates_at -> Timestamp,
    }
}

diesel::table! {
    /// Device tokens by their SHA-256 (hardening round 2).
    device_tokens (token_hash) {
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
    }
}

diesel::table! {
    /// Invitations by id; the code only as its SHA-256 (the approval issue).
    invitations (id) {
        id -> BigInt,
        code_hash -> Text,
        email -> Nullable<Text>,
        is_admin -> Bool,
        note -> Nullable<Text>,
        created_at -> Timestamp,
        created_by -> Nullable<BigInt>,
        expires_at -> Timestamp,
        max_uses -> BigInt,
        uses -> BigInt,
        revoked_at -> Nullable<Timestamp>,
    }
}

// The session lookup reads a user and their session in one statement; a refresh finds a
// token's session with it.
diesel::allow_tables_to_appear_in_same_query!(users, sessions);
diesel::allow_tables_to_appear_in_same_query!(sessions, refresh_tokens);
diesel::allow_tables_to_appear_in_same_query!(refresh_tokens, users);

diesel::table! {
    /// +1/-1 per user and change of status or role, written by triggers (see the
    /// migration `user_tallies`); a count is the SUM of the matching rows.
    user_tallies (id) {
        id -> BigInt,
        status -> Text,
        is_admin -> Bool,
        n -> BigInt,
    }
}

diesel::table! {
    /// Webhook endpoints (the notifications issue).
    webhooks (id) {
        id -> BigInt,
        url -> Text,
        /// `EventFilter::to_stored`: `*`, or the names between commas (`,a,b,`).
        events -> Text,
        description -> Nullable<Text>,
        secret -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One event's delivery to one endpoint.
    webhook_deliveries (id) {
        id -> BigInt,
        webhook_id -> BigInt,
        /// The event's message id (`msg_…`, the `webhook-id` header), the same in each of
        /// its deliveries.
        event_id -> Text,
        /// `EventType::as_str`.
        event_type -> Text,
        /// The JSON body sent.
        payload -> Text,
        /// `pending`, `delivered` or `failed` (`DeliveryStatus::as_str`).
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Nullable<Timestamp>,
        /// A dispatcher's claim on a pending delivery runs until then.
        claimed_until -> Nullable<Timestamp>,
        last_attempt_at -> Nullable<Timestamp>,
        last_status_code -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));

// A delivery is claimed with its endpoint's address and secret.
diesel::allow_tables_to_appear_in_same_query!(webhooks, webhook_deliveries);

diesel::table! {
    /// Mail queued with the change that causes it (the notifications issue).
    mails (id) {
        id -> BigInt,
        /// `MailKind::as_str`.
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        /// `pending`, `sent` or `failed`.
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Nullable<Timestamp>,
        /// A dispatcher's claim on a pending mail runs until then.
        claimed_until -> Nullable<Timestamp>,
        last_attempt_at -> Nullable<Timestamp>,
        /// The last SMTP reply's code.
        last_status_code -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One-time codes sent by mail (the recovery issue), stored as their hashes.
    one_time_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        /// `CodePurpose::as_str`.
        purpose -> Text,
        code_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        wrong_tries -> BigInt,
        spent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// A user's TOTP factor (the MFA issue): the sealed secret, pending until confirmed.
    totp_factors (user_id) {
        user_id -> BigInt,
        /// `MfaKeys::seal_totp`, base 64.
        secret -> Text,
        confirmed_at -> Nullable<Timestamp>,
        last_step -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Recovery codes, as keyed hashes; each spent once.
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        created_at -> Timestamp,
        spent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Challenges under way: logins waiting for their second step, passkey ceremonies.
    mfa_challenges (id) {
        id -> BigInt,
        token_hash -> Text,
        /// `ChallengePurpose::as_str`.
        purpose -> Text,
        user_id -> Nullable<BigInt>,
        state -> Nullable<Text>,
        wrong_tries -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    /// Passkeys (the MFA issue): WebAuthn discoverable credentials, each with the WebAuthn
    /// library's record of it (public key, counter, backup state) as JSON.
    passkeys (id) {
        id -> BigInt,
        user_id -> BigInt,
        /// Base 64 (URL-safe, unpadded); unique.
        credential_id -> Text,
        name -> Text,
        data -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}
