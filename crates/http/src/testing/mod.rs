//! The HTTP API suite, for any store (feature `testing`).
//!
//! [`spawn_app`] builds the app in-process exactly as the binary builds it (through
//! [`configure`](crate::configure)) over a given store and a fast fake hasher; [`suite`] holds
//! the black-box checks of the API, each an `async fn` of a [`NewStore`], and
//! [`api_suite_tests!`](crate::api_suite_tests) makes one `#[actix_web::test]` of each for
//! a store: this crate's tests run it over the domain's in-memory store, the binary's over
//! SQLite and PostgreSQL.

// Test support panics on purpose: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

mod authenticator;
mod helpers;
pub mod suite;

pub use authenticator::SoftAuthenticator;
pub use gatehouse_domain::UserStore;
pub use helpers::*;

/// Makes a fresh, empty store each time it is called: a test that needs two apps with
/// stores of their own calls it twice.
pub type NewStore = dyn Fn() -> Arc<dyn UserStore>;

/// Expands to one `#[actix_web::test]` per check of [`suite`], in a module per suite module
/// (`admin::…`, `auth::…`), each on fresh stores made by `$make`: an expression evaluated
/// each time a check asks for a store, giving an `Arc` of a [`UserStore`]. The invoking
/// module's names are in scope (`use super::*`), and its crate must depend on `actix-web`.
///
/// Attributes written after `$make` go on every test, above its `#[actix_web::test]`: for a
/// backend that may be absent, one that reports the tests ignored rather than passed
/// (storage's `#[needs_postgres]`):
///
/// ```text
/// gatehouse_http::api_suite_tests!(Arc::new(TestDatabase::postgres()), #[needs_postgres]);
/// ```
#[macro_export]
macro_rules! api_suite_tests {
    (@modules $attrs:tt $make:tt; $($module:ident { $($check:ident),+ $(,)? })+) => {$(
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $(
                $crate::api_suite_tests!(@test $attrs $make $module $check);
            )+
        }
    )+};
    (@test [$(#[$attr:meta])*] ($make:expr) $module:ident $check:ident) => {
        $(#[$attr])*
        #[::actix_web::test]
        async fn $check() {
            let new_store = || -> ::std::sync::Arc<dyn $crate::testing::UserStore> { $make };
            $crate::testing::suite::$module::$check(&new_store).await;
        }
    };
    ($make:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::__api_suite!(api_suite_tests!(@modules [$(#[$attr])*] ($make);));
    };
}

/// The checks of [`suite`], module by module, handed to the macro named (with the tokens
/// given before them): the one list [`api_suite_tests!`](crate::api_suite_tests) and
/// [`suite::CHECKS`] are made from.
#[doc(hidden)]
#[macro_export]
macro_rules! __api_suite {
    ($callback:ident!($($before:tt)*)) => {
        $crate::$callback! {
            $($before)*
            admin {
                list_users_returns_everyone_newest_first_with_the_total,
                list_users_pages_and_filters,
                pending_count_counts_users_waiting_for_approval,
                an_admin_creates_users_approved_by_default,
                creating_a_user_refuses_bad_input_and_taken_emails_and_changes_nothing,
                approving_records_when_and_by_which_admin_once,
                an_admin_changes_email_admin_flag_and_status,
                an_update_without_changes_returns_the_user_unchanged,
                changing_an_email_to_a_taken_one_is_a_conflict,
                deleting_a_user_answers_204_and_removes_them,
                deleting_the_approving_admin_clears_approved_by,
                a_password_reset_revokes_old_tokens_and_the_old_password,
                a_pending_users_password_can_be_reset_and_they_stay_pending,
                an_admin_resetting_their_own_password_revokes_their_own_tokens,
                unknown_user_ids_are_not_found,
                a_non_admin_is_refused_on_every_admin_route,
                every_admin_route_needs_a_valid_token,
                the_last_admin_cannot_remove_disable_or_delete_themselves,
                the_last_admin_rule_holds_whoever_acts_and_only_for_the_last_one,
                a_demoted_admin_loses_admin_routes_on_the_next_request,
                a_disabled_admins_token_is_refused_on_admin_routes,
                a_promoted_user_gains_admin_routes_on_the_next_request,
            }
            approval {
                an_applicant_says_why_and_admins_see_it,
                a_reason_too_long_or_with_control_characters_is_refused,
                a_rejected_user_is_told_with_the_note_and_leaves_the_queue,
                rejecting_an_approved_user_ends_their_tokens,
                a_note_goes_only_beside_a_decision,
                bulk_decisions_decide_all_in_the_order_given,
                a_bulk_decision_with_a_bad_id_changes_nothing,
                an_invitation_is_created_listed_read_and_revoked,
                invitation_requests_are_checked_field_by_field,
                an_invitation_lets_its_invitee_in_approved_once,
                an_email_bound_admin_invitation_admits_only_that_email,
                an_invitation_links_to_the_console_when_the_public_url_is_known,
                invite_only_registration_needs_an_invitation,
                closed_registration_refuses_everyone_but_the_first_user,
            }
            sessions {
                a_login_starts_a_session_with_a_refresh_token,
                a_refresh_rotates_the_pair_and_a_replay_ends_the_session,
                concurrent_refreshes_with_one_token_give_one_pair,
                refresh_takes_a_form_and_ignores_other_parameters,
                refresh_errors_are_oauth_style,
                logout_ends_the_session_and_its_refresh_token,
                a_user_lists_and_ends_their_own_sessions,
                a_password_change_ends_other_sessions_and_renews_this_one,
                admins_see_and_end_a_users_sessions,
                taking_a_user_out_of_service_ends_their_sessions,
                sessions_idle_out_and_end_at_their_maximum_age,
            }
            mfa {
                totp_enrolment_turns_on_the_second_step,
                the_second_step_takes_a_code_once,
                an_mfa_token_dies_after_five_wrong_codes,
                racing_wrong_codes_get_five_tries_in_all,
                turning_totp_off_needs_the_password_and_a_code,
                an_admin_resets_a_users_mfa,
                admins_without_mfa_may_only_enrol_when_required,
            }
            passkeys {
                a_passkey_is_registered_listed_and_signs_in_without_a_password,
                a_passkey_login_skips_the_second_step_of_totp,
                passkey_challenges_are_single_use_and_bound_to_their_ceremony,
                a_passkey_must_carry_its_users_handle,
                a_passkey_login_is_refused_for_an_account_that_may_not_sign_in,
                a_passkey_login_is_refused_for_an_unverified_email_when_required,
                deleting_passkeys_turns_mfa_off_and_only_the_owners,
                with_totp_off_a_passkey_keeps_mfa_on,
                an_admin_reset_deletes_passkeys,
                passkey_routes_are_not_enabled_without_a_relying_party,
            }
            recovery {
                recovery_routes_answer_not_enabled_without_a_mailer,
                a_mailed_code_resets_the_password_once,
                a_mailed_code_verifies_the_email,
            }
            webhooks {
                an_admin_adds_a_webhook_and_sees_its_secret_only_then,
                webhooks_are_listed_read_changed_and_deleted,
                webhook_events_and_fields_are_checked,
                webhook_urls_must_be_public_http_without_credentials,
                private_webhook_urls_are_allowed_when_the_server_says_so,
                rotating_a_webhook_secret_gives_a_new_one,
                a_test_event_is_queued_for_that_endpoint_alone,
                user_changes_are_written_for_subscribed_active_endpoints_only,
                webhook_routes_are_for_admins_only,
                unknown_and_malformed_webhook_ids,
                webhook_changes_are_audited,
            }
            auth {
                the_first_user_registers_as_an_approved_admin,
                later_users_register_as_pending_non_admins,
                registration_trims_and_lower_cases_the_email,
                no_response_ever_carries_the_password_or_its_hash,
                registering_a_taken_email_is_a_conflict_whatever_its_case_or_spacing,
                login_with_a_form_returns_a_bearer_token_that_works,
                login_with_json_returns_a_bearer_token_that_works,
                login_compares_the_email_trimmed_and_lower_cased,
                login_form_accepts_the_other_oauth2_password_grant_fields,
                each_login_issues_a_distinct_token,
                unknown_email_and_wrong_password_get_the_same_401,
                a_pending_user_is_told_so_only_with_the_right_password,
                a_disabled_user_is_told_so_only_with_the_right_password,
                an_approved_user_can_log_in_and_a_re_enabled_one_again,
                me_returns_the_signed_in_user,
                me_refuses_missing_malformed_and_forged_tokens,
                a_disabled_users_token_stops_working_on_the_next_request,
                a_deleted_users_token_stops_working_on_the_next_request,
                bearer_header_is_ignored_where_no_token_is_needed,
            }
            bad_input {
                malformed_and_non_object_json_is_refused,
                fields_of_the_wrong_type_are_refused,
                unknown_and_repeated_fields_are_refused_not_ignored,
                ids_that_are_not_positive_64_bit_integers_are_refused,
                bodies_over_16_kib_are_refused_with_413,
                bodies_without_a_json_content_type_are_refused_with_415,
                implausible_and_odd_unicode_emails_are_refused,
                several_bad_fields_are_reported_together,
                statuses_are_exact_words,
                passwords_are_8_to_72_bytes_counted_in_bytes,
                bad_list_query_parameters_are_refused,
                unknown_routes_are_json_404s,
                wrong_methods_are_json_405s_with_allow,
                refusals_come_before_a_bad_body_is_looked_at,
                nul_bytes_in_names_and_searches_are_just_wrong_not_errors,
            }
            emails {
                look_alike_registrations_are_refused,
                a_fullwidth_login_name_signs_in_to_the_normalised_account,
                admins_cannot_create_or_rename_into_a_look_alike,
            }
            hardening {
                disabling_or_setting_back_to_pending_ends_tokens_for_good,
                a_reset_leaves_a_stolen_token_nothing_to_change_the_password_with,
                a_device_that_logged_in_before_is_not_locked_out_by_an_attacker,
                logins_refused_as_overloaded_are_not_failed_guesses,
                passwords_without_substance_are_refused,
                tokens_from_the_future_or_at_their_expiry_are_refused,
                ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4,
            }
            listings {
                an_unpaged_user_listing_longer_than_a_chunk_is_every_user_in_pages_order,
                an_unpaged_audit_log_longer_than_a_chunk_is_every_entry_in_pages_order,
                a_client_that_stops_reading_a_listing_lets_go_of_the_database,
            }
            observe {
                every_response_carries_a_request_id_given_or_made,
                metrics_count_a_scripted_session_by_route_pattern_status_and_outcome,
                metrics_are_open_by_default,
                with_a_metrics_token_metrics_need_exactly_that_token,
            }
            security {
                logout_revokes_the_presented_token_and_only_that_one,
                logout_needs_a_valid_token,
                changing_the_password_checks_the_current_one_and_the_policy,
                changing_the_password_revokes_every_older_token_and_returns_a_fresh_one,
                common_passwords_are_refused_at_registration_whatever_their_case,
                an_admin_reset_to_a_common_password_is_refused,
                five_failures_lock_an_account_known_or_not_alike_until_the_backoff_passes,
                a_client_address_has_a_failure_budget_across_accounts,
                a_client_address_may_register_only_so_often,
                behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget,
                without_trusted_proxies_x_forwarded_for_is_ignored,
                the_audit_log_records_who_did_what_to_whom_newest_first,
                bad_audit_filters_are_422s_naming_the_parameter,
                only_admins_read_the_audit_log,
                jwks_is_empty_under_hs256,
                the_new_endpoints_answer_with_nosniff_and_no_store,
                cors_is_off_unless_origins_are_configured,
                cors_allows_only_the_configured_origins,
            }
            service {
                healthz_and_readyz_answer_200_without_a_token,
                a_full_hashing_queue_answers_503_at_once,
                every_response_says_nosniff_and_no_store,
            }
        }
    };
}

/// `module::check` for each check of the list.
#[doc(hidden)]
#[macro_export]
macro_rules! __api_suite_names {
    ($($module:ident { $($check:ident),+ $(,)? })+) => {
        &[$($(concat!(stringify!($module), "::", stringify!($check)),)+)+]
    };
}
