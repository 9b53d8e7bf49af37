//! The Bot Framework side of Cordon: the activity model, the check of
//! inbound tokens and the client of the Bot Connector.
//!
//! This module knows nothing about containment; it moves activities in and
//! out and decides whether an inbound one may be believed.
//!
//! - `activity`: the activity as Cordon reads and writes it.
//! - `auth` and `keys`: the inbound token check and the issuers' keys.
//! - `connector`, `token` and `throttle`: the outbound client, its access
//!   token and the per-thread rate limits it keeps to.

pub mod activity;
pub mod auth;
pub mod connector;
pub mod keys;
pub mod throttle;
pub mod token;

pub use activity::{Activity, Attachment, ChannelAccount, ConversationAccount};
pub use auth::{AuthError, AuthSettings, BotAuthenticator, Caller};
pub use connector::{ConnectorClient, ConnectorError, ConnectorSettings, ThreadRef};
