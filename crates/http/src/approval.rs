//! The approval queue's operations (API.md, "Approval queue and invitations"): bulk
//! decisions on pending users, and invitations. Their request and response shapes live
//! here beside them; registration with a reason or an invitation, a single decision with a
//! note and the rejected user's login are in [`crate::handlers`] with the operations they
//! extend.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use gatehouse_domain::{
    parse_expires_in, Actor, BulkIds, Decision, Invitation, InvitationCode, InvitationQuery,
    InvitationRequest, InvitationStatus, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::UserPublic;
use crate::error::{ApiError, FieldError};
use crate::extract::{AdminUser, StrictJson, StrictQuery};
use crate::handlers::{number, origin, Problems};
use crate::rfc3339::Rfc3339;
use crate::schemas::{
    AdminErrors, BodyErrors, Count, EmailInput, FreeTextInput, InvitationIdErrors,
    InvitationStatusName, NotPending, Timestamp, UserIdSchema, UsersNotFound, ValidationFailed,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /users/decisions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionsRequest {
    /// 1 to 100 distinct user ids, each of a pending user.
    #[schema(value_type = Vec<UserIdSchema>, min_items = 1, max_items = 100)]
    pub ids: Vec<i64>,
    /// `approve` or `reject`.
    #[schema(value_type = DecisionName)]
    pub decision: String,
    /// The note for every one of them (a rejected user is shown it at login).
    #[serde(default)]
    #[schema(value_type = Option<FreeTextInput>)]
    pub note: Option<String>,
}

/// A decision on pending users.
#[derive(ToSchema)]
#[schema(as = Decision)]
#[allow(dead_code)]
pub(crate) enum DecisionName {
    #[schema(rename = "approve")]
    Approve,
    #[schema(rename = "reject")]
    Reject,
}

/// `POST /invitations`: every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateInvitationRequest {
    /// The one address that may use it (then `max_uses` must be 1); the invitee's email
    /// starts verified.
    #[serde(default)]
    #[schema(value_type = Option<EmailInput>)]
    pub email: Option<String>,
    /// Whether the invitee becomes an admin (default `false`).
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// How long it admits registrations: digits and a unit, `s`, `m`, `h` or `d`, from
    /// `1m` to `90d` (default `7d`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "7d")]
    pub expires_in: Option<String>,
    /// How many registrations it admits, 1 to 1000 (default 1; exactly 1 with `email`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_uses: Option<i64>,
    /// A note for the admins (who it is for, why).
    #[serde(default)]
    #[schema(value_type = Option<FreeTextInput>)]
    pub note: Option<String>,
}

/// An invitation as admins see it (never its code).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Invitation)]
pub struct InvitationPublic {
    #[schema(minimum = 1)]
    id: i64,
    /// The one address that may use it, or `null` for anyone.
    #[schema(value_type = Option<String>)]
    email: Option<String>,
    /// Whether its invitees become admins.
    is_admin: bool,
    #[schema(value_type = Option<String>)]
    note: Option<String>,
    #[schema(value_type = Timestamp)]
    created_at: Rfc3339,
    /// The admin who created it; `null` from the command line or once that admin is
    /// deleted.
    #[schema(value_type = Option<UserIdSchema>)]
    created_by: Option<i64>,
    #[schema(value_type = Timestamp)]
    expires_at: Rfc3339,
    #[schema(minimum = 1, maximum = 1000)]
    max_uses: u32,
    #[schema(minimum = 0, maximum = 1000)]
    uses: u32,
    /// When it was revoked; `null` unless it was.
    #[schema(value_type = Option<Timestamp>)]
    revoked_at: Option<Rfc3339>,
    /// Its status now: revoked before used, used before expired.
    #[schema(value_type = InvitationStatusName)]
    status: &'static str,
}

impl InvitationPublic {
    /// `invitation` as the API shows it, with its status at `now`.
    #[must_use]
    pub fn new(invitation: &Invitation, now: DateTime<Utc>) -> Self {
        Self {
            id: invitation.id,
            email: invitation.email.as_ref().map(|e| e.as_str().to_owned()),
            is_admin: invitation.is_admin,
            note: invitation.note.clone(),
            created_at: Rfc3339::new(invitation.created_at),
            created_by: invitation.created_by.map(UserId::get),
            expires_at: Rfc3339::new(invitation.expires_at),
            max_uses: invitation.max_uses,
            uses: invitation.uses,
            revoked_at: invitation.revoked_at.map(Rfc3339::new),
            status: invitation.status(now).as_str(),
        }
    }
}

/// A new invitation: the invitation, its code (shown only here) and a link that opens
/// registration with the code filled in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    invitation: InvitationPublic,
    /// The code: shown only in this response (only its SHA-256 is stored).
    code: String,
    /// The console's registration page with the code filled in; only when
    /// `GATEHOUSE_PUBLIC_URL` is set. The code travels in the fragment, which browsers
    /// never send to a server.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    url: Option<String>,
}

impl CreatedInvitation {
    /// The answer to a creation: `invitation` at `now`, its `code`, and its link when the
    /// console's public address (`GATEHOUSE_PUBLIC_URL`) is known.
    #[must_use]
    pub fn new(
        invitation: &Invitation,
        code: &InvitationCode,
        public_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            invitation: InvitationPublic::new(invitation, now),
            code: code.expose().to_owned(),
            url: public_url.map(|base| invitation_url(base, code)),
        }
    }

    /// The link, if there is one.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// `GET /invitations` query parameters, as text.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListInvitationsParams {
    /// At most this many (0: an empty page); without it, every one.
    #[param(value_type = Option<Count>)]
    pub limit: Option<String>,
    /// Skip this many first (default 0).
    #[param(value_type = Option<Count>)]
    pub offset: Option<String>,
    /// Only invitations with this status now.
    #[param(value_type = Option<InvitationStatusName>)]
    pub status: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/auth/users/decisions",
    tag = "admin",
    summary = "Approve or reject many pending users at once",
    description = "All or nothing, in one transaction: when any id names no user (404) or \
        a user who is not pending (409), nothing changes and `ids` lists the ids at fault. \
        Writes one `user_approved` or `user_rejected` audit entry per user.",
    security(("bearer" = [])),
    request_body(content = DecisionsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The users as decided, in the order of `ids`",
            body = Vec<UserPublic>),
        (status = 404, response = UsersNotFound),
        (status = 409, response = NotPending),
        AdminErrors,
        BodyErrors,
    )
)]
pub(crate) async fn decide_users(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<DecisionsRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let ids = problems.check("ids", BulkIds::new(request.ids));
    let decision = problems.check("decision", request.decision.parse::<Decision>());
    let note = problems.free_text("note", request.note.as_deref());
    problems.finish()?;
    let (Some(ids), Some(decision)) = (ids, decision) else {
        return Err(ApiError::invalid("body", "ids and decision are required"));
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let decided = state
        .blocking(move || {
            users.decide(
                Actor::User(admin.id),
                &ids,
                decision,
                note.as_ref(),
                &origin,
            )
        })
        .await?;
    let body: Vec<UserPublic<'_>> = decided.iter().map(UserPublic::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    post,
    path = "/api/auth/invitations",
    tag = "invitations",
    summary = "Create an invitation",
    description = "Whoever registers with its code starts approved (an admin if \
        `is_admin`), without waiting in the queue. The code carries 160 random bits and is \
        shown only in this response; only its SHA-256 is stored.",
    security(("bearer" = [])),
    request_body(content = CreateInvitationRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The invitation and its code", body = CreatedInvitation,
            links(
                ("GetInvitation" = (operation_id = "get_invitation",
                    parameters(("id" = "$response.body#/id")))),
                ("RevokeInvitation" = (operation_id = "revoke_invitation",
                    parameters(("id" = "$response.body#/id")))),
            )),
        AdminErrors,
        BodyErrors,
    )
)]
pub(crate) async fn create_invitation(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<CreateInvitationRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let email = request
        .email
        .as_deref()
        .and_then(|raw| problems.email("email", raw));
    let expires_in = match request.expires_in.as_deref() {
        None => Some(InvitationRequest::DEFAULT_EXPIRES_IN),
        Some(raw) => problems.check("expires_in", parse_expires_in(raw)),
    };
    let max_uses = match request.max_uses {
        None => Some(1),
        Some(n) => problems.check(
            "max_uses",
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=InvitationRequest::MAX_USES).contains(n))
                .ok_or("must be from 1 to 1000"),
        ),
    };
    let note = problems.free_text("note", request.note.as_deref());
    problems.finish()?;
    let (Some(expires_in), Some(max_uses)) = (expires_in, max_uses) else {
        return Err(ApiError::invalid("body", "invalid invitation"));
    };
    let asked = InvitationRequest {
        email,
        is_admin: request.is_admin.unwrap_or(false),
        expires_in,
        max_uses,
        note: note.map(|n| n.as_str().to_owned()),
    };
    let valid = asked.validate().map_err(|problems| {
        ApiError::validation(
            problems
                .iter()
                .map(|p| FieldError::new(p.field(), p.to_string()))
                .collect(),
        )
    })?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let (invitation, code) = state
        .blocking(move || users.create_invitation(Actor::User(admin.id), &valid, &origin))
        .await?;
    Ok(HttpResponse::Created().json(CreatedInvitation::new(
        &invitation,
        &code,
        state.public_url(),
        gatehouse_domain::now(),
    )))
}

/// The console's registration page with `code` filled in: `{base}/#/register?invitation=…`.
#[must_use]
pub fn invitation_url(base: &str, code: &InvitationCode) -> String {
    gatehouse_domain::invitation_link(base, code)
}

fn invitation_query(params: ListInvitationsParams) -> Result<InvitationQuery> {
    let mut problems = Problems::default();
    let limit = number(&mut problems, "limit", params.limit);
    let offset = number(&mut problems, "offset", params.offset);
    let status = problems.check(
        "status",
        params
            .status
            .map(|s| s.parse::<InvitationStatus>())
            .transpose(),
    );
    problems.finish()?;
    Ok(InvitationQuery {
        status: status.flatten(),
        limit,
        offset: offset.unwrap_or(0),
    })
}

#[utoipa::path(
    get,
    path = "/api/auth/invitations",
    tag = "invitations",
    summary = "List invitations, newest first",
    description = "Any other query parameter, or one given twice, is 422.",
    security(("bearer" = [])),
    params(ListInvitationsParams),
    responses(
        (status = 200, description = "A page of invitations", body = Vec<InvitationPublic>,
            headers(("X-Total-Count" = u64,
                description = "How many invitations match the filter, before paging"))),
        (status = 422, response = ValidationFailed),
        AdminErrors,
    )
)]
pub(crate) async fn list_invitations(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    query: StrictQuery<ListInvitationsParams>,
) -> Result<HttpResponse> {
    let query = invitation_query(query.into_inner()?)?;
    let users = state.users.clone();
    let page = state
        .blocking(move || users.list_invitations(Actor::User(admin.id), &query))
        .await?;
    let now = gatehouse_domain::now();
    let body: Vec<InvitationPublic> = page
        .items
        .iter()
        .map(|i| InvitationPublic::new(i, now))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", page.total))
        .json(body))
}

fn invitation_id(raw: &str) -> Result<i64> {
    raw.parse::<UserId>()
        .map(UserId::get)
        .map_err(|_| ApiError::invalid("id", "Invitation id must be a positive 64-bit integer"))
}

#[utoipa::path(
    get,
    path = "/api/auth/invitations/{id}",
    tag = "invitations",
    summary = "One invitation",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 200, description = "The invitation", body = InvitationPublic),
        AdminErrors,
        InvitationIdErrors,
    )
)]
pub(crate) async fn get_invitation(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = invitation_id(&id)?;
    let users = state.users.clone();
    let invitation = state
        .blocking(move || users.find_invitation(Actor::User(admin.id), id))
        .await?;
    Ok(HttpResponse::Ok().json(InvitationPublic::new(&invitation, gatehouse_domain::now())))
}

#[utoipa::path(
    delete,
    path = "/api/auth/invitations/{id}",
    tag = "invitations",
    summary = "Revoke an invitation",
    description = "It admits nobody from now on and stays listed, `revoked`, for the \
        record. Revoking it again changes nothing.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 204, description = "Revoked; no body"),
        AdminErrors,
        InvitationIdErrors,
    )
)]
pub(crate) async fn revoke_invitation(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let id = invitation_id(&id)?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.revoke_invitation(Actor::User(admin.id), id, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A presented invitation code: one that cannot be a code is answered as any invalid
/// invitation.
pub(crate) fn presented_code(raw: &str) -> Result<InvitationCode> {
    InvitationCode::presented(raw).ok_or_else(|| gatehouse_domain::Error::InvalidInvitation.into())
}
