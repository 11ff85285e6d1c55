//! Authentication and access: the token secret, password hashing, tokens, the `AuthUser`
//! extractor, and the scope checks every handler uses.

pub mod extractor;
pub mod password;
pub mod scope;
pub mod secret;
pub mod token;

pub use extractor::AuthUser;
