//! `#[needs_postgres]`: a PostgreSQL test that is honest about not running.
//!
//! Rust's test harness has three outcomes, `ok`, `FAILED` and `ignored`, and only `#[ignore]`,
//! fixed when the test is compiled, gives the third. So the decision is taken at compile time
//! from the environment `cargo test` runs in:
//!
//! - `GATEHOUSE_TEST_POSTGRES_URL` set: the test runs, on a database of its own on that server
//!   (`gatehouse_storage::testing`); a server it cannot reach fails it.
//! - `GATEHOUSE_REQUIRE_POSTGRES=1` (CI): the test runs too, and fails at once when the URL is
//!   missing, so CI can never pass without having run it.
//! - neither: the test is compiled `#[ignore = "needs PostgreSQL: …"]`, and the summary line
//!   counts it as ignored (`cargo test -- --ignored` runs it anyway, and it fails without a
//!   server).
//!
//! The expansion also reads both variables with `option_env!`, which makes rustc record them in
//! the test crate's dep-info: cargo then recompiles that test crate (and only it, not the
//! libraries) when either variable changes, so the decision follows the environment without a
//! build script.
//!
//! Put the attribute above `#[test]` (or `#[tokio::test]`, `#[actix_web::test]`): attributes
//! expand from the outside in, and the test attribute must see the `#[ignore]` it adds.

use proc_macro::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};

/// The server PostgreSQL tests use.
const URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";
/// Set to `1`, PostgreSQL tests run (and fail) even without a server.
const REQUIRE_VAR: &str = "GATEHOUSE_REQUIRE_POSTGRES";

/// Marks a test that needs PostgreSQL: ignored, with the reason, when neither
/// `GATEHOUSE_TEST_POSTGRES_URL` nor `GATEHOUSE_REQUIRE_POSTGRES=1` was set at compile time.
#[proc_macro_attribute]
pub fn needs_postgres(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Some(first) = args.into_iter().next() {
        return compile_error(first.span(), "#[needs_postgres] takes no arguments");
    }
    let configured = is_set(URL_VAR) || is_set(REQUIRE_VAR);
    let mut out = String::new();
    if !configured {
        out.push_str(&format!(
            "#[ignore = \"needs PostgreSQL: set {URL_VAR} (with {REQUIRE_VAR}=1 it fails instead)\"]"
        ));
    }
    let mut tokens: TokenStream = out.parse().unwrap_or_default();
    tokens.extend(item);
    // Tracks both variables: cargo recompiles this test crate when either changes.
    let tracker: TokenStream = format!(
        "const _: [::core::option::Option<&str>; 2] = \
         [::core::option_env!(\"{URL_VAR}\"), ::core::option_env!(\"{REQUIRE_VAR}\")];"
    )
    .parse()
    .unwrap_or_default();
    tokens.extend(tracker);
    tokens
}

/// Whether `name` holds something other than nothing or `0`.
fn is_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "0")
}

fn compile_error(span: Span, message: &str) -> TokenStream {
    let mut message = TokenTree::from(proc_macro::Literal::string(message));
    message.set_span(span);
    [
        TokenTree::from(Ident::new("compile_error", span)),
        TokenTree::from(Punct::new('!', Spacing::Alone)),
        TokenTree::from(Group::new(Delimiter::Parenthesis, message.into())),
        TokenTree::from(Punct::new(';', Spacing::Alone)),
    ]
    .into_iter()
    .collect()
}
