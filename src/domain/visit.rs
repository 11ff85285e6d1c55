//! What a visit records besides its kind and time: the needs found and where it took place.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// A need found, e.g. `health`, `safety`, `living`, `dispute`.
    #[schema(example = "health", min_length = 1, max_length = 32)]
    pub category: String,
    #[schema(example = "血压偏高，已提醒按时服药", max_length = 1000)]
    pub detail: String,
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[schema(example = 36.6512, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = 117.0009, minimum = -180, maximum = 180)]
    pub lng: f64,
    /// Metres.
    #[schema(example = 15.0, minimum = 0, maximum = 100000)]
    pub accuracy_m: f64,
}
