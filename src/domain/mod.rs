//! Pure domain rules: no actix, no diesel.
