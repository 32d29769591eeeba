//! The handlers: extract, parse into domain types, run the use case off the async
//! workers, map the result to a response. No rule and no SQL lives here.

use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{Actor, Email, Password, UserChanges, UserId, UserQuery, UserStatus};

use crate::dto::{
    CountResponse, ListUsersParams, LoginForm, LoginJson, MessageResponse, RegisterRequest,
    ResetPasswordRequest, StatusResponse, TokenResponse, UpdateUserRequest, UserPublic,
};
use crate::error::{ApiError, FieldError};
use crate::extract::{is_form, is_json, json_body, parse_form, parse_json, AdminUser, CurrentUser};
use crate::{blocking, AppState};

type Result<T> = std::result::Result<T, ApiError>;

/// Collects the problems of several fields so one response names them all.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parsed: std::result::Result<T, E>,
    ) -> Option<T> {
        parsed
            .map_err(|e| self.0.push(FieldError::new(field, e.to_string())))
            .ok()
    }

    fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

fn user_id(raw: &str) -> Result<UserId> {
    raw.parse()
        .map_err(|e: gatehouse_domain::InvalidUserId| ApiError::invalid("id", e.to_string()))
}

pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let request: RegisterRequest = json_body(&req, &body)?;
    let mut problems = Problems::default();
    let email = problems.check("email", Email::parse(&request.email));
    let password = problems.check("password", Password::parse(request.password));
    problems.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::invalid("body", "email and password are required"));
    };
    let users = state.users.clone();
    let user = state
        .hashing
        .run(move || users.register(email, &password))
        .await??;
    Ok(HttpResponse::Created().json(UserPublic::from(&user)))
}

pub(crate) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let (email, password) = if is_form(&req) {
        let form: LoginForm = parse_form(&body)?;
        if form.grant_type.as_deref().is_some_and(|g| g != "password") {
            return Err(ApiError::invalid("grant_type", "must be \"password\""));
        }
        (form.username, form.password)
    } else if is_json(&req) {
        let json: LoginJson = parse_json(&body)?;
        (json.email, json.password)
    } else {
        return Err(ApiError::unsupported_media_type(
            "application/x-www-form-urlencoded or application/json",
        ));
    };
    let users = state.users.clone();
    let token = state
        .hashing
        .run(move || users.login(&email, &password))
        .await??;
    Ok(HttpResponse::Ok().json(TokenResponse::from(token)))
}

pub(crate) async fn me(CurrentUser(user): CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserPublic::from(&user))
}

fn list_query(params: ListUsersParams) -> Result<UserQuery> {
    let mut problems = Problems::default();
    let number = |raw: Option<String>| raw.map(|r| r.parse::<u64>()).transpose();
    let limit = problems.check(
        "limit",
        number(params.limit).map_err(|_| "must be a non-negative integer"),
    );
    let offset = problems.check(
        "offset",
        number(params.offset).map_err(|_| "must be a non-negative integer"),
    );
    let status = problems.check(
        "status",
        params.status.map(|s| s.parse::<UserStatus>()).transpose(),
    );
    problems.finish()?;
    Ok(UserQuery {
        limit: limit.flatten(),
        offset: offset.flatten().unwrap_or(0),
        status: status.flatten(),
        email_contains: params.q.filter(|q| !q.is_empty()),
    })
}

pub(crate) async fn list_users(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let query = list_query(parse_form(req.query_string().as_bytes())?)?;
    let users = state.users.clone();
    let page = blocking(move || users.list_users(Actor::User(admin.id), &query)).await?;
    let body: Vec<UserPublic> = page.items.iter().map(UserPublic::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", page.total))
        .json(body))
}

pub(crate) async fn pending_count(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let users = state.users.clone();
    let count = blocking(move || users.pending_count(Actor::User(admin.id))).await?;
    Ok(HttpResponse::Ok().json(CountResponse { count }))
}

pub(crate) async fn update_user(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let target = user_id(&id)?;
    let request: UpdateUserRequest = json_body(&req, &body)?;
    let mut problems = Problems::default();
    let email = problems.check("email", request.email.map(|e| Email::parse(&e)).transpose());
    let status = problems.check(
        "status",
        request.status.map(|s| s.parse::<UserStatus>()).transpose(),
    );
    problems.finish()?;
    let changes = UserChanges {
        email: email.flatten(),
        is_admin: request.is_admin,
        status: status.flatten(),
    };
    let users = state.users.clone();
    let user = blocking(move || users.update_user(Actor::User(admin.id), target, &changes)).await?;
    Ok(HttpResponse::Ok().json(UserPublic::from(&user)))
}

pub(crate) async fn delete_user(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let target = user_id(&id)?;
    let users = state.users.clone();
    blocking(move || users.delete_user(Actor::User(admin.id), target)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn reset_password(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let target = user_id(&id)?;
    let request: ResetPasswordRequest = json_body(&req, &body)?;
    let password = Password::parse(request.password)
        .map_err(|e| ApiError::invalid("password", e.to_string()))?;
    let users = state.users.clone();
    state
        .hashing
        .run(move || users.reset_password(Actor::User(admin.id), target, &password))
        .await??;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: "Password reset successfully",
    }))
}

pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse> {
    let users = state.users.clone();
    blocking(move || users.ping()).await?;
    Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
}

pub(crate) async fn not_found() -> Result<HttpResponse> {
    Err(ApiError::for_status(actix_web::http::StatusCode::NOT_FOUND))
}
