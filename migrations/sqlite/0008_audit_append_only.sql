-- The audit chain is append-only: the database itself refuses to change or
-- remove an event. Someone with the rights to drop these triggers can
-- still tamper, and `cordon audit verify` then finds it through the hashes.

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: events cannot be changed');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: events cannot be deleted');
END;
