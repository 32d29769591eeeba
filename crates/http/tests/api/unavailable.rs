//! The 503s of an unavailable database, over a store that never answers (so here only, not
//! in the shared suite: no real backend is involved).

use std::sync::Arc;

use gatehouse_domain::ports::{answered, Work};
use gatehouse_domain::{Error, SessionLookup, SessionSource, UserId, UserStore};
use gatehouse_http::testing::{assert_problem, spawn_app, ADMIN_EMAIL, PASSWORD};

/// A store whose database never answers.
#[derive(Debug)]
struct DownStore;

const DOWN: &str = "connection refused by 10.0.0.7:5432";

impl SessionSource for DownStore {
    fn find_session_user(&self, _id: UserId, _session_id: i64) -> SessionLookup {
        answered(Err(Error::unavailable(DOWN)))
    }
}

impl UserStore for DownStore {
    fn read(&self, _work: &mut Work<'_>) -> Result<(), Error> {
        Err(Error::unavailable(DOWN))
    }

    fn write(&self, _work: &mut Work<'_>) -> Result<(), Error> {
        Err(Error::unavailable(DOWN))
    }

    fn ping(&self) -> Result<(), Error> {
        Err(Error::unavailable(DOWN))
    }
}

#[actix_web::test]
async fn an_unreachable_database_makes_readyz_503_but_not_healthz() {
    let app = spawn_app(Arc::new(DownStore)).await;

    let health = app.get("/healthz", None).await;
    assert_eq!(health.status.as_u16(), 200, "{}", health.text());

    let ready = app.get("/readyz", None).await;
    assert_problem(&ready, 503, "database_unavailable", "readyz");
    assert_eq!(ready.header("retry-after"), Some("1"));
    assert!(!ready.text().contains("10.0.0.7"), "no cause in the body");
}

#[actix_web::test]
async fn an_unreachable_database_is_a_503_with_retry_after_never_a_500() {
    let app = spawn_app(Arc::new(DownStore)).await;

    for (what, res) in [
        ("register", app.register(ADMIN_EMAIL, PASSWORD).await),
        ("form login", app.login_form(ADMIN_EMAIL, PASSWORD).await),
        ("JSON login", app.login_json(ADMIN_EMAIL, PASSWORD).await),
    ] {
        let body = assert_problem(&res, 503, "database_unavailable", what);
        assert_eq!(res.header("retry-after"), Some("1"), "{what}");
        assert!(
            !res.text().contains("10.0.0.7"),
            "{what}: no cause in {body}"
        );
    }
}
