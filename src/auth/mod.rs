//! Authentication: the token-signing secret (tokens, passwords and scope arrive with accounts).

pub mod secret;
