//! Cordon: governed containment of compromised Entra ID accounts.
//!
//! A request to contain an account arrives from one of three doors, and
//! all three lead to the same [`containment::Engine`]:
//!
//! - [`http::messages`]: Teams activities from the Bot Connector, whose
//!   tokens [`botframework::auth`] checks before anything is read;
//!   [`teams`] turns them into commands and card clicks.
//! - [`http::webhook`]: the ServiceNow business rule, signed with an HMAC
//!   that [`servicenow::webhook`] verifies.
//! - [`http::api`]: SIEMs, scripts and AI agents with a bearer token; they
//!   can only propose.
//!
//! The engine's intake de-duplicates (one request per kind, user and
//! incident), gathers the facts from [`graph`] and [`servicenow`] and asks
//! [`policy`], a pure module with no I/O, what to do. A request that may
//! proceed gets an approval card in the approvals channel; approver clicks
//! are checked by the same policy. Once the approvals are in, the
//! [`containment::runner`] executes the runbook step by step, journaling
//! each step before and after it in the [`store`], under a lease so that one
//! replica at a time runs a request and a crash resumes where it stopped.
//! Every state change is one transaction that appends an [`audit`] event to
//! a hash chain.
//!
//! The operator's view: [`metrics`] counts step latency, retries and
//! throttling for `/metrics`, the audit chain is checked and exported by
//! `cordon audit`, and every HTTP request and run has its tracing span.
//!
//! Around that core: [`config`] reads and checks the settings, [`startup`]
//! builds the application (tests start it on port 0), [`retry`] and
//! [`oauth`] are shared by the outbound clients, [`sandbox`] simulates a
//! whole tenant over real HTTP for the demo and the tests, [`demo`] drives
//! scenarios through it, [`manifest`] packs the Teams app and [`cli`] holds
//! the work behind the operator commands.

pub mod audit;
pub mod botframework;
pub mod cli;
pub mod config;
pub mod containment;
pub mod demo;
pub mod graph;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod retry;
pub mod sandbox;
pub mod servicenow;
pub mod startup;
pub mod store;
pub mod teams;
