//! Everything Cordon says and hears in Teams: the commands an analyst
//! types, the cards approvers click, and the threads in the approvals
//! channel.
//!
//! - `commands`: the text commands and their parsing.
//! - `actions`: what an incoming message or card click does.
//! - `channel`: posting, replying and updating cards through the connector.
//! - `view` and `cards`/`template`: what a request looks like on a card.

pub mod actions;
pub mod cards;
pub mod channel;
pub mod commands;
pub mod template;
pub mod view;
