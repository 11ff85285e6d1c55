//! Authentication and access: the token secret, password hashing and the throttle on password
//! checks, tokens, the `AuthUser` extractor, and the scope checks every handler uses.

pub mod extractor;
pub mod password;
pub mod scope;
pub mod secret;
pub mod throttle;
pub mod token;

pub use extractor::AuthUser;
