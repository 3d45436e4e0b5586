//! Polls and votes in the database: the one place both the socket handlers and the HTTP
//! endpoint read and write them.

use std::fmt;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set, SqlErr,
};
use switchboard_sdk::EventError;
use switchboard_sdk::api::ApiError;
use switchboard_sdk::protocol::{code, unix_now};

use crate::entity::{poll, vote};
use crate::model::{NewPoll, OptionResult, PollResults, tag_name};

/// Why a vote or a read was refused.
#[derive(Debug)]
pub enum PollError {
    /// No poll has this id.
    UnknownPoll(i64),
    /// The option index is past the poll's last option.
    BadOption {
        /// The index asked for.
        option: u32,
        /// How many options the poll has.
        count: usize,
    },
    /// The user has voted in this poll before.
    AlreadyVoted(i64),
    /// The database failed.
    Db(DbErr),
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollError::UnknownPoll(id) => write!(f, "no poll with id {id}"),
            PollError::BadOption { option, count } => write!(
                f,
                "data.option: {option} is not an option of this poll (0 to {})",
                count.saturating_sub(1)
            ),
            PollError::AlreadyVoted(id) => write!(f, "you have already voted in poll {id}"),
            PollError::Db(e) => write!(f, "database error: {e}"),
        }
    }
}

impl From<DbErr> for PollError {
    fn from(e: DbErr) -> Self {
        PollError::Db(e)
    }
}

impl From<PollError> for EventError {
    /// 404 unknown poll, 400 bad option, 409 second vote; a database failure is -1 with a
    /// generic message (the detail goes to the log, not to the client).
    fn from(e: PollError) -> Self {
        match e {
            PollError::UnknownPoll(_) => EventError::not_found(e.to_string()),
            PollError::BadOption { .. } => EventError::bad_request(e.to_string()),
            PollError::AlreadyVoted(_) => EventError::new(code::CONFLICT, e.to_string()),
            PollError::Db(db) => {
                tracing::error!(error = %db, "poll: database failure");
                EventError::failed("the poll could not be read or saved; try again")
            }
        }
    }
}

impl From<PollError> for ApiError {
    fn from(e: PollError) -> Self {
        match e {
            PollError::UnknownPoll(_) => ApiError::not_found(e.to_string()),
            PollError::BadOption { .. } => ApiError::invalid_field("option", e.to_string()),
            PollError::AlreadyVoted(_) => ApiError::conflict(e.to_string()),
            PollError::Db(db) => ApiError::internal(db),
        }
    }
}

/// Stores a validated poll; answers it with zero votes.
pub async fn create(
    db: &impl ConnectionTrait,
    new: NewPoll,
    created_by: &str,
) -> Result<PollResults, PollError> {
    let options = serde_json::to_string(&new.options)
        .map_err(|e| DbErr::Custom(format!("options not serialisable: {e}")))?;
    let row = poll::ActiveModel {
        question: Set(new.question),
        options: Set(options),
        created_by: Set(created_by.to_string()),
        created_at: Set(unix_now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    results_of(db, row).await
}

/// Records `user_id`'s vote for `option` in poll `poll_id`; answers the poll's new counts.
pub async fn vote(
    db: &impl ConnectionTrait,
    poll_id: i64,
    user_id: i64,
    option: u32,
) -> Result<PollResults, PollError> {
    let row = find(db, poll_id).await?;
    let count = options_of(&row)?.len();
    if option as usize >= count {
        return Err(PollError::BadOption { option, count });
    }
    let inserted = vote::ActiveModel {
        poll_id: Set(poll_id),
        user_id: Set(user_id),
        option_index: Set(option as i32),
        created_at: Set(unix_now()),
        ..Default::default()
    }
    .insert(db)
    .await;
    match inserted {
        Ok(_) => {}
        // The unique index decides, not a read before the write: that would let two
        // simultaneous votes of one user both through.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Err(PollError::AlreadyVoted(poll_id));
        }
        Err(e) => return Err(e.into()),
    }
    results_of(db, row).await
}

/// The poll's counts now.
pub async fn results(db: &impl ConnectionTrait, poll_id: i64) -> Result<PollResults, PollError> {
    let row = find(db, poll_id).await?;
    results_of(db, row).await
}

async fn find(db: &impl ConnectionTrait, poll_id: i64) -> Result<poll::Model, PollError> {
    poll::Entity::find_by_id(poll_id)
        .one(db)
        .await?
        .ok_or(PollError::UnknownPoll(poll_id))
}

fn options_of(row: &poll::Model) -> Result<Vec<String>, PollError> {
    serde_json::from_str(&row.options).map_err(|e| {
        PollError::Db(DbErr::Custom(format!(
            "poll {} has unreadable options: {e}",
            row.id
        )))
    })
}

async fn results_of(db: &impl ConnectionTrait, row: poll::Model) -> Result<PollResults, PollError> {
    let options = options_of(&row)?;
    // One grouped count, not one query per option; COUNT is a 64-bit integer on every backend.
    let counts: Vec<(i32, i64)> = vote::Entity::find()
        .select_only()
        .column(vote::Column::OptionIndex)
        .column_as(Expr::col(vote::Column::Id).count(), "votes")
        .filter(vote::Column::PollId.eq(row.id))
        .group_by(vote::Column::OptionIndex)
        .into_tuple()
        .all(db)
        .await?;
    let mut results: Vec<OptionResult> = options
        .into_iter()
        .enumerate()
        .map(|(i, text)| OptionResult {
            index: i as u32,
            text,
            votes: 0,
        })
        .collect();
    for (index, n) in counts {
        if let Some(r) = usize::try_from(index).ok().and_then(|i| results.get_mut(i)) {
            r.votes = u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(PollResults {
        id: row.id,
        question: row.question,
        total: results.iter().map(|r| r.votes).sum(),
        options: results,
        tag: tag_name(row.id),
        created_by: row.created_by,
        created_at: row.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectOptions, Database, DatabaseConnection};
    use sea_orm_migration::SchemaManager;

    /// A private in-memory SQLite with the addon's schema. One connection: each in-memory
    /// connection would otherwise be a database of its own.
    async fn db() -> DatabaseConnection {
        let mut opts = ConnectOptions::new("sqlite::memory:");
        opts.max_connections(1).min_connections(1);
        let db = Database::connect(opts).await.unwrap();
        let manager = SchemaManager::new(&db);
        for step in crate::migration::all() {
            step.up(&manager).await.unwrap();
        }
        db
    }

    fn lunch() -> NewPoll {
        NewPoll {
            question: "Lunch?".into(),
            options: vec!["pizza".into(), "soup".into(), "salad".into()],
        }
    }

    #[tokio::test]
    async fn a_new_poll_has_every_option_at_zero() {
        let db = db().await;
        let p = create(&db, lunch(), "alice").await.unwrap();
        assert_eq!(p.tag, format!("poll:{}", p.id));
        assert_eq!(p.total, 0);
        let texts: Vec<&str> = p.options.iter().map(|o| o.text.as_str()).collect();
        assert_eq!(texts, ["pizza", "soup", "salad"]);
        assert!(p.options.iter().all(|o| o.votes == 0));
        assert_eq!(results(&db, p.id).await.unwrap(), p);
    }

    #[tokio::test]
    async fn votes_are_counted_per_option() {
        let db = db().await;
        let p = create(&db, lunch(), "alice").await.unwrap();
        vote(&db, p.id, 1, 2).await.unwrap();
        vote(&db, p.id, 2, 2).await.unwrap();
        let r = vote(&db, p.id, 3, 0).await.unwrap();
        let counts: Vec<u64> = r.options.iter().map(|o| o.votes).collect();
        assert_eq!((counts, r.total), (vec![1, 0, 2], 3));
    }

    #[tokio::test]
    async fn a_second_vote_of_one_user_is_refused_with_409() {
        let db = db().await;
        let p = create(&db, lunch(), "alice").await.unwrap();
        vote(&db, p.id, 7, 0).await.unwrap();
        let e = vote(&db, p.id, 7, 1).await.unwrap_err();
        assert!(
            matches!(e, PollError::AlreadyVoted(id) if id == p.id),
            "{e:?}"
        );
        let e = EventError::from(e);
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            format!("you have already voted in poll {}", p.id)
        );
        assert_eq!(results(&db, p.id).await.unwrap().total, 1, "not counted");
        // The same user may vote in another poll.
        let other = create(&db, lunch(), "bob").await.unwrap();
        assert!(vote(&db, other.id, 7, 1).await.is_ok());
    }

    #[tokio::test]
    async fn unknown_polls_and_options_are_refused() {
        let db = db().await;
        let e = EventError::from(vote(&db, 99, 1, 0).await.unwrap_err());
        assert_eq!((e.code, e.message.as_str()), (404, "no poll with id 99"));
        let e = EventError::from(results(&db, 99).await.unwrap_err());
        assert_eq!(e.code, 404);
        let p = create(&db, lunch(), "alice").await.unwrap();
        let e = EventError::from(vote(&db, p.id, 1, 3).await.unwrap_err());
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "data.option: 3 is not an option of this poll (0 to 2)")
        );
        assert_eq!(results(&db, p.id).await.unwrap().total, 0);
    }

    #[tokio::test]
    async fn http_errors_carry_the_matching_status_and_code() {
        let e = ApiError::from(PollError::UnknownPoll(5));
        assert_eq!(
            (e.status().as_u16(), e.body().code.as_str()),
            (404, "not_found")
        );
        let e = ApiError::from(PollError::AlreadyVoted(5));
        assert_eq!(
            (e.status().as_u16(), e.body().code.as_str()),
            (409, "conflict")
        );
    }
}
