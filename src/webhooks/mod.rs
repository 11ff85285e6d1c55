//! Outbound webhooks: signed JSON POSTs to URLs that users choose.
//!
//! A user-chosen URL is a way into the server's own network (SSRF): `http://127.0.0.1:5432/`, the
//! cloud metadata service at 169.254.169.254, or a name whose DNS answer changes to a private
//! address after the URL was checked. So the check runs twice: [`guard::check_url`] when a
//! subscription is saved, so the user hears at once why a URL can't be used, and again at every
//! delivery, where [`send::Sender`] re-checks a literal address and resolves names through
//! [`guard::GuardedResolver`], which drops non-public answers before any connection is made.
//!
//! [`sign`] lets a receiver check that a delivery came from us, unaltered and recently.

pub mod guard;
pub mod send;
pub mod sign;
pub mod worker;

pub use send::{Outcome, SendConfig, Sender};
