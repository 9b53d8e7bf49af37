//! The Bot Framework side of Cordon: the activity model, the check of
//! inbound tokens and the client of the Bot Connector.
//!
//! This module knows nothing about containment; it moves activities in and
//! out and decides whether an inbound one may be believed.

pub mod activity;

pub use activity::{Activity, Attachment, ChannelAccount, ConversationAccount};
