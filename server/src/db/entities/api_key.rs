//! `api_keys`: backend-service keys, stored as SHA-256 hashes.

use sea_orm::entity::prelude::*;

/// An API key row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// Id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique name.
    #[sea_orm(unique)]
    pub name: String,
    /// Hex SHA-256 of the key.
    #[sea_orm(unique)]
    pub key_hash: String,
    /// First characters of the key, to recognise it in lists.
    pub prefix: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When a request last presented it, unix seconds (updated at most once a minute).
    pub last_used_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
