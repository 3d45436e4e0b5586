//! `/api/audit` (admin): the stored audit log.

use std::sync::Arc;

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use switchboard_sdk::Role;
use switchboard_sdk::api::{ApiAuth, ApiError};

use super::{ApiTags, AppState};
use crate::audit::{AuditQuery, entity, search};

/// One audited action.
#[derive(Object)]
pub struct AuditRecord {
    /// Id; larger is later.
    pub id: i64,
    /// When, unix seconds.
    pub at: i64,
    /// Who: a username, `apikey:<name>`, or the name tried at a failed login.
    pub actor: String,
    /// `send`, `kick`, `tag.join`, `tag.quit`, `login`, `user.create`, `user.update`,
    /// `user.delete`, `apikey.create` or `apikey.revoke`.
    pub action: String,
    /// `all`, `client:<id>`, `user:<id>`, `tag:<name>` or `apikey:<id>` (empty for logins).
    pub target: String,
    /// `ok`, or the error code the caller got (`invalid_credentials`, `not_found`, …).
    pub result: String,
    /// Connections reached (send), closed (kick) or changed (tags); 0 otherwise.
    pub count: i64,
    /// The caller's IP.
    pub ip: String,
    /// The event of a send, the tag of a tag change, a kick's reason, why a login failed,
    /// what changed on a user.
    pub detail: String,
}

impl From<entity::Model> for AuditRecord {
    fn from(m: entity::Model) -> Self {
        AuditRecord {
            id: m.id,
            at: m.at,
            actor: m.actor,
            action: m.action,
            target: m.target,
            result: m.result,
            count: m.count,
            ip: m.ip,
            detail: m.detail,
        }
    }
}

/// A page of the audit log.
#[derive(Object)]
pub struct AuditPage {
    /// Records, newest first.
    pub list: Vec<AuditRecord>,
    /// Page number (from 1).
    pub page: u64,
    /// Page size.
    #[oai(rename = "pageSize")]
    pub page_size: u64,
    /// Records matching the filters.
    pub total: u64,
}

/// `/api/audit`.
pub struct AuditApi(pub Arc<AppState>);

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

#[OpenApi(prefix_path = "/api/audit", tag = "ApiTags::Audit")]
impl AuditApi {
    /// The audit log
    ///
    /// Every send, kick and tag change made through this API, every login (successful or
    /// not) and every user and API-key change, newest first. Filters combine: `actor` and
    /// `action` match exactly, `from` and `to` (unix seconds) are inclusive. Records older
    /// than `audit.retention` are deleted.
    #[oai(path = "/", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ApiAuth,
        page: Query<Option<u64>>,
        #[oai(name = "pageSize")] page_size: Query<Option<u64>>,
        actor: Query<Option<String>>,
        action: Query<Option<String>>,
        from: Query<Option<i64>>,
        to: Query<Option<i64>>,
    ) -> Result<Json<AuditPage>, ApiError> {
        auth.require(Role::Admin)?;
        let (page, page_size) = super::paging(page.0, page_size.0)?;
        if let (Some(f), Some(t)) = (from.0, to.0) {
            if f > t {
                return Err(ApiError::invalid_field("from", "must not be after `to`"));
            }
        }
        let q = AuditQuery {
            page,
            page_size,
            actor: non_empty(actor.0),
            action: non_empty(action.0),
            from: from.0,
            to: to.0,
        };
        let (rows, total) = search(&self.0.db, &q).await.map_err(ApiError::internal)?;
        Ok(Json(AuditPage {
            list: rows.into_iter().map(AuditRecord::from).collect(),
            page,
            page_size,
            total,
        }))
    }
}
