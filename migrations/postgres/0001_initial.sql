-- Containment requests, their approvals and runbook steps, the audit chain,
-- and what Cordon remembers about Teams conversations.

CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target_upn TEXT NOT NULL,
    target_id TEXT NOT NULL,
    target_name TEXT NOT NULL,
    target_department TEXT,
    incident_number TEXT NOT NULL,
    incident_sys_id TEXT NOT NULL,
    justification TEXT NOT NULL,
    requester_id TEXT NOT NULL,
    requester_name TEXT NOT NULL,
    source TEXT NOT NULL,
    risk TEXT,
    classification TEXT NOT NULL,
    rule TEXT NOT NULL,
    runbook TEXT NOT NULL,
    steps TEXT NOT NULL,
    required_approvals BIGINT NOT NULL,
    auto_approved_by TEXT,
    state TEXT NOT NULL,
    outcome TEXT,
    origin TEXT,
    thread TEXT,
    related_request_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    run_count BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX requests_one_per_target_and_incident
    ON requests (kind, target_upn, incident_number);
CREATE INDEX requests_by_state ON requests (state, lease_until);
CREATE INDEX requests_by_incident ON requests (incident_number);

CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests (id),
    approver_id TEXT NOT NULL,
    approver_name TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);

CREATE TABLE steps (
    request_id TEXT NOT NULL REFERENCES requests (id),
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT,
    finished_at BIGINT,
    http_status BIGINT,
    outside_ids TEXT,
    error TEXT,
    detail TEXT,
    PRIMARY KEY (request_id, seq)
);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    request_id TEXT,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_request ON audit_events (request_id, seq);

-- One row: the tip of the chain. Every transaction that appends an event
-- updates it first, which serialises appends across connections and
-- replicas without gaps or forks.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE seen_activities (
    activity_id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE conversations (
    key TEXT PRIMARY KEY,
    service_url TEXT NOT NULL,
    at BIGINT NOT NULL
);
