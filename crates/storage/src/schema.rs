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
    revoked_tokens (token_id) {
        token_id -> Text,
        user_id -> BigInt,
        expires_at -> Timestamp,
    }
}

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

// The session lookup reads a user and checks a revocation in one statement.
diesel::allow_tables_to_appear_in_same_query!(users, revoked_tokens);

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
