//! Cordon: governed containment of compromised Entra ID accounts.
//!
//! (The architecture tour is written once the modules below exist.)

pub mod audit;
pub mod botframework;
pub mod cli;
pub mod config;
pub mod containment;
pub mod demo;
pub mod graph;
pub mod http;
pub mod manifest;
pub mod oauth;
pub mod policy;
pub mod retry;
pub mod sandbox;
pub mod servicenow;
pub mod startup;
pub mod store;
pub mod teams;
