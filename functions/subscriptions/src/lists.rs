//! Paging parameters shared by every list (SPEC §7: `limit` default 50, max 100).

use serde::Deserialize;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// `limit` as given, or the default; 400 outside 1..=100.
pub fn list_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::validation("limit", "limit must be a whole number from 1 to 100")),
        },
    }
}
