//! `/api/apikeys` (admin).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use switchboard_sdk::Role;
use switchboard_sdk::api::{ApiAuth, ApiError};

use super::{ApiTags, AppState};
use crate::audit::{AuditEntry, action};

/// Create a key.
#[derive(Object)]
#[oai(example)]
pub struct CreateKey {
    /// 1–64 characters of letters, digits, `_ . @ -`.
    pub name: String,
}

/// A new key: `key` is shown only in this response.
#[derive(Object)]
pub struct CreatedKey {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The key; send as `X-API-Key`.
    pub key: String,
}

/// A key in lists (never the key itself).
#[derive(Object)]
pub struct KeyOut {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// First characters of the key.
    pub prefix: String,
    /// Unix seconds.
    #[oai(rename = "createdAt")]
    pub created_at: i64,
    /// When a request last used it, unix seconds (kept to the minute); null if never.
    #[oai(rename = "lastUsedAt")]
    pub last_used_at: Option<i64>,
}

#[derive(ApiResponse)]
enum Created {
    /// Created; the key is shown only now.
    #[oai(status = 201)]
    Ok(Json<CreatedKey>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Ok,
}

/// `/api/apikeys`.
pub struct ApiKeysApi(pub Arc<AppState>);

#[OpenApi(prefix_path = "/api/apikeys", tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// List API keys
    #[oai(path = "/", method = "get")]
    async fn list(&self, auth: ApiAuth) -> Result<Json<Vec<KeyOut>>, ApiError> {
        auth.require(Role::Admin)?;
        let keys = self.0.auth.list_api_keys().await?;
        Ok(Json(
            keys.into_iter()
                .map(|k| KeyOut {
                    id: k.id,
                    name: k.name,
                    prefix: k.prefix,
                    created_at: k.created_at,
                    last_used_at: k.last_used_at,
                })
                .collect(),
        ))
    }

    /// Create an API key
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        req: &Request,
        auth: ApiAuth,
        body: Json<CreateKey>,
    ) -> Result<Created, ApiError> {
        let who = auth.require(Role::Admin)?;
        let k = self.0.auth.create_api_key(&body.name).await?;
        let entry = AuditEntry::new(
            &who.username,
            action::APIKEY_CREATE,
            format!("apikey:{}", k.id),
        );
        self.0.audit(req, entry.detail(k.name.clone()));
        Ok(Created::Ok(Json(CreatedKey {
            id: k.id,
            name: k.name,
            key: k.key,
        })))
    }

    /// Delete an API key
    #[oai(path = "/:id", method = "delete")]
    async fn delete(
        &self,
        req: &Request,
        auth: ApiAuth,
        id: Path<i64>,
    ) -> Result<Deleted, ApiError> {
        let who = auth.require(Role::Admin)?;
        self.0.auth.delete_api_key(id.0).await?;
        let entry = AuditEntry::new(
            &who.username,
            action::APIKEY_REVOKE,
            format!("apikey:{}", id.0),
        );
        self.0.audit(req, entry);
        Ok(Deleted::Ok)
    }
}

impl poem_openapi::types::Example for CreateKey {
    fn example() -> Self {
        CreateKey {
            name: "billing-service".into(),
        }
    }
}
