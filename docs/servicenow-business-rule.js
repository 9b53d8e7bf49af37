/*
 * Cordon: ServiceNow business rule that asks Cordon to contain an account.
 *
 * When an incident enters the containment state, or its security action
 * becomes "revoke_sessions", this rule sends a signed JSON request to
 * Cordon's webhook. Cordon verifies the signature, then runs its own
 * policy and approval flow; nothing is contained by this rule itself.
 *
 * Setup (as an administrator, in the global scope):
 *
 * 1. System properties (sys_properties.list), all private:
 *      x_cordon.webhook_url       string    Cordon's public URL, such as
 *                                           https://cordon.contoso.com
 *      x_cordon.webhook_secret    password2 the same value as
 *                                           servicenow.webhook_secret in
 *                                           Cordon's configuration
 *      x_cordon.containment_state string    the incident state value that
 *                                           means "contain the account"
 *      x_cordon.upn_field         string    the sys_user field holding the
 *                                           Entra ID UPN (default: email)
 *    Give read access to the secret to the admin role only.
 *
 * 2. The incident table needs u_affected_user (a reference to sys_user or
 *    a string holding the UPN) and, to request a session revocation on
 *    its own, u_security_action (a choice with the value revoke_sessions).
 *    u_security_justification is used when present, the short
 *    description otherwise.
 *
 * 3. Business rule (sys_script.list, New):
 *      Name      Cordon containment request
 *      Table     Incident [incident]
 *      Advanced  checked
 *      When      async; Insert and Update checked
 *      Condition
 *        current.state.changesTo(gs.getProperty('x_cordon.containment_state'))
 *          || current.u_security_action.changesTo('revoke_sessions')
 *      Script    this file, from "(function executeRule" on.
 *    The condition is evaluated when the record is saved; the script runs
 *    later, where current.field.changes() no longer works, so the
 *    condition must stay in the Condition field.
 *
 * 4. Let the instance reach Cordon over HTTPS (the URL in step 1 must
 *    present a certificate the instance trusts), then move a test
 *    incident to the containment state and look for the request in
 *    Cordon's Teams channel and in System Logs (source "Cordon").
 *
 * The clocks of the instance and of Cordon must agree within five
 * minutes: Cordon refuses older or newer timestamps, and accepts each
 * signature once.
 */
(function executeRule(current, previous /* null in async rules */) {
    var LOG_SOURCE = 'Cordon';

    var baseUrl = gs.getProperty('x_cordon.webhook_url', '');
    var secret = gs.getProperty('x_cordon.webhook_secret', '');
    if (!baseUrl || !secret) {
        gs.error('x_cordon.webhook_url or x_cordon.webhook_secret is not set;'
            + ' no containment request sent for ' + current.number,
            LOG_SOURCE);
        return;
    }

    var body = JSON.stringify(containmentRequest(current));

    // Sign "{timestamp}.{body}" with HMAC-SHA256; generateMac wants the
    // key base64-encoded and returns the MAC base64-encoded.
    var timestamp = String(
        Math.floor(new GlideDateTime().getNumericValue() / 1000));
    var key = GlideStringUtil.base64Encode(secret);
    var signature = new GlideCertificateEncryption()
        .generateMac(key, 'HmacSHA256', timestamp + '.' + body);

    var request = new sn_ws.RESTMessageV2();
    request.setEndpoint(baseUrl.replace(/\/+$/, '') + '/api/servicenow/webhook');
    request.setHttpMethod('post');
    request.setRequestHeader('Content-Type', 'application/json');
    request.setRequestHeader('X-Cordon-Timestamp', timestamp);
    request.setRequestHeader('X-Cordon-Signature', signature);
    request.setRequestBody(body);
    request.setHttpTimeout(15000);

    // Only the status and Cordon's request id are logged; the body and
    // the signature are not.
    try {
        var response = request.execute();
        var status = response.getStatusCode();
        if (status == 200 || status == 202) {
            var answer = JSON.parse(response.getBody() || '{}');
            gs.info('containment request for ' + current.number
                + ' accepted (' + status + ', request ' + answer.request_id
                + ')', LOG_SOURCE);
        } else {
            gs.error('containment request for ' + current.number
                + ' refused with HTTP ' + status, LOG_SOURCE);
        }
    } catch (e) {
        gs.error('containment request for ' + current.number
            + ' not delivered: ' + e.message, LOG_SOURCE);
    }

    function containmentRequest(incident) {
        var payload = {
            number: String(incident.number),
            sys_id: String(incident.sys_id),
            affected_user: affectedUpn(incident),
            requested_by: requesterUpn(incident),
            justification: justification(incident),
            category: String(incident.getValue('category') || ''),
            source: 'servicenow',
            risk: riskOf(incident)
        };
        if (incident.isValidField('u_security_action')
                && incident.getValue('u_security_action') == 'revoke_sessions') {
            payload.security_action = 'revoke_sessions';
        }
        return payload;
    }

    function upnOf(user) {
        var field = gs.getProperty('x_cordon.upn_field', 'email');
        if (!user || !user.isValidRecord()) {
            return '';
        }
        return String(user.getValue(field) || '');
    }

    // u_affected_user is either a sys_user reference or the UPN itself.
    // GlideElement has no getValue(); the record's getValue() gives the
    // stored value (the sys_id for a reference).
    function affectedUpn(incident) {
        if (!incident.isValidField('u_affected_user')) {
            return '';
        }
        var element = incident.u_affected_user;
        if (element.getReferenceTable() == 'sys_user') {
            return upnOf(element.getRefRecord());
        }
        return String(incident.getValue('u_affected_user') || '');
    }

    // The user who saved the incident; the rule runs later, so the
    // session user may not be them.
    function requesterUpn(incident) {
        var user = new GlideRecord('sys_user');
        if (!user.get('user_name', incident.getValue('sys_updated_by'))) {
            return '';
        }
        return upnOf(user);
    }

    function justification(incident) {
        var text = '';
        if (incident.isValidField('u_security_justification')) {
            text = String(incident.u_security_justification || '');
        }
        if (!text) {
            text = String(incident.short_description || '');
        }
        return text || ('Incident ' + incident.number);
    }

    // Priority 1 and 2 are high, 3 medium, the rest low.
    function riskOf(incident) {
        var priority = String(incident.getValue('priority'));
        if (priority == '1' || priority == '2') {
            return 'high';
        }
        return priority == '3' ? 'medium' : 'low';
    }
})(current, previous);
