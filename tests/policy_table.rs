//! Table-driven checks of the policy over its public API: each rule with a
//! case it allows and a case it refuses.

use cordon::policy::{
    authorize_approver, check_request_shape, evaluate, evaluate_revoke_only, explain,
    ApproverFacts, AutoApproveRule, Classification, Decision, IncidentFacts, Plan,
    PolicyConfigError, PolicySettings, Refusal, RequestFacts, RequestKind, Risk, Source, StepKind,
    TargetFacts, Upn,
};

const TENANT: &str = "tenant-1";
const REQUESTER: &str = "requester-oid";

fn settings() -> PolicySettings {
    PolicySettings {
        allowed_domains: vec!["contoso.com".into()],
        approver_group_ids: vec!["approvers".into()],
        privileged_group_ids: vec!["tier0-admins".into()],
        privileged_role_ids: vec!["global-admin-role".into()],
        service_account_group_ids: vec!["svc-group".into()],
        service_account_upn_patterns: vec!["svc-*@contoso.com".into()],
        break_glass_object_ids: vec!["bg-oid".into()],
        ..PolicySettings::default()
    }
}

fn request(upn: &str) -> RequestFacts {
    RequestFacts {
        kind: RequestKind::Containment,
        upn: upn.into(),
        incident_number: "INC0012345".into(),
        source: Source::Teams,
        risk: Some(Risk::High),
        requester_id: REQUESTER.into(),
    }
}

fn target(upn: &str) -> TargetFacts {
    TargetFacts {
        object_id: "alice-oid".into(),
        upn: upn.into(),
        display_name: Some("Alice".into()),
        account_enabled: true,
        user_type: Some("Member".into()),
        member_of: vec![],
        role_ids: vec![],
    }
}

fn incident(affected: &str) -> IncidentFacts {
    IncidentFacts {
        number: "INC0012345".into(),
        category: Some("security".into()),
        subcategory: Some("account_compromise".into()),
        state: "2".into(),
        requester: Some("bob@contoso.com".into()),
        affected_user: Some(affected.into()),
        justification: Some("token theft suspected".into()),
    }
}

/// One request with the facts a caller would have gathered for it.
struct Case {
    settings: PolicySettings,
    request: RequestFacts,
    target: Option<TargetFacts>,
    incident: Option<IncidentFacts>,
}

impl Case {
    fn alice() -> Case {
        Case::for_upn("alice@contoso.com")
    }

    fn for_upn(upn: &str) -> Case {
        Case {
            settings: settings(),
            request: request(upn),
            target: Some(target(upn)),
            incident: Some(incident(upn)),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Case)) -> Case {
        change(&mut self);
        self
    }

    fn decide(&self) -> Decision {
        evaluate(
            &self.settings,
            &self.request,
            self.target.as_ref(),
            self.incident.as_ref(),
        )
    }

    fn plan(&self) -> Plan {
        match self.decide() {
            Decision::Proceed(plan) => plan,
            Decision::Refuse(refusal) => panic!("refused: {refusal:?}"),
        }
    }

    fn refusal(&self) -> Refusal {
        match self.decide() {
            Decision::Refuse(refusal) => refusal,
            Decision::Proceed(plan) => panic!("proceeded: {plan:?}"),
        }
    }
}

fn assert_refused(cases: Vec<(&str, Case, &str)>) {
    for (name, case, rule) in cases {
        let refusal = case.refusal();
        assert_eq!(refusal.rule, rule, "{name}: {refusal:?}");
        assert!(!refusal.reason.is_empty(), "{name}: empty reason");
    }
}

fn assert_allowed(cases: Vec<(&str, Case)>) {
    for (name, case) in cases {
        if let Decision::Refuse(refusal) = case.decide() {
            panic!("{name}: refused with {refusal:?}");
        }
    }
}

#[test]
fn upn_shapes_and_domains_are_checked_before_any_lookup() {
    let allowed = [
        ("plain", "alice@contoso.com", "alice@contoso.com"),
        ("uppercase", "ALICE@Contoso.COM", "alice@contoso.com"),
        ("padded", "  alice@contoso.com ", "alice@contoso.com"),
        (
            "fullwidth normalised by NFKC",
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}\u{ff20}contoso.com",
            "alice@contoso.com",
        ),
        (
            "fullwidth domain",
            "alice@\u{ff43}\u{ff4f}\u{ff4e}\u{ff54}\u{ff4f}\u{ff53}\u{ff4f}.com",
            "alice@contoso.com",
        ),
    ];
    for (name, raw, normalised) in allowed {
        let upn = check_request_shape(&settings(), &request(raw))
            .unwrap_or_else(|r| panic!("{name}: {r:?}"));
        assert_eq!(upn.as_str(), normalised, "{name}");
    }

    let refused = [
        (
            "cyrillic o",
            "alice@c\u{043e}ntoso.com",
            "upn.lookalike_domain",
        ),
        (
            "punycode",
            "alice@xn--cntoso-5of.com",
            "upn.lookalike_domain",
        ),
        (
            "all cyrillic domain",
            "alice@\u{0441}\u{043e}\u{0440}.com",
            "upn.lookalike_domain",
        ),
        (
            "other domain",
            "alice@fabrikam.com",
            "upn.domain_not_allowed",
        ),
        (
            "sub domain",
            "alice@eu.contoso.com",
            "upn.domain_not_allowed",
        ),
        ("no at", "alice", "upn.syntax"),
        ("two ats", "alice@bob@contoso.com", "upn.syntax"),
        ("bad char", "al ice@contoso.com", "upn.syntax"),
        ("hash", "al#ice@contoso.com", "upn.syntax"),
    ];
    for (name, raw, rule) in refused {
        let refusal = check_request_shape(&settings(), &request(raw)).expect_err(name);
        assert_eq!(refusal.rule, rule, "{name}: {refusal:?}");
    }
}

#[test]
fn an_internationalized_domain_is_allowed_only_when_configured() {
    let mut settings = settings();
    settings.allowed_domains.push("m\u{fc}nchen.de".into());

    let upn = check_request_shape(&settings, &request("anna@M\u{fc}nchen.de")).unwrap();
    assert_eq!(upn.domain(), "xn--mnchen-3ya.de");
    let punycode = request("anna@xn--mnchen-3ya.de");
    assert!(check_request_shape(&settings, &punycode).is_ok());

    let lookalike = request("anna@m\u{fc}nchen.com");
    let refusal = check_request_shape(&settings, &lookalike).unwrap_err();
    assert_eq!(refusal.rule, "upn.lookalike_domain");
}

#[test]
fn incident_numbers_must_look_like_servicenow_numbers() {
    for number in ["INC0012345", "inc0012345", "SIR00123456", "RITM1234567"] {
        let mut facts = request("alice@contoso.com");
        facts.incident_number = number.into();
        assert!(check_request_shape(&settings(), &facts).is_ok(), "{number}");
    }
    for number in ["", "INC123", "IN0012345", "INCIDENT0012345", "INC00123X5"] {
        let mut facts = request("alice@contoso.com");
        facts.incident_number = number.into();
        let refusal = check_request_shape(&settings(), &facts).unwrap_err();
        assert_eq!(refusal.rule, "incident.number_syntax", "{number}");
    }
}

#[test]
fn uppercase_request_matches_lowercase_directory_and_incident() {
    let case = Case::alice().with(|c| {
        c.request.upn = "Alice@CONTOSO.com".into();
        c.incident.as_mut().unwrap().affected_user = Some(" ALICE@contoso.com".into());
    });
    assert_eq!(case.plan().classification, Classification::Standard);
}

#[test]
fn target_rules_refuse_what_the_bot_must_not_touch() {
    assert_refused(vec![
        (
            "unknown user",
            Case::alice().with(|c| c.target = None),
            "target.unknown",
        ),
        (
            "break-glass",
            Case::alice().with(|c| c.target.as_mut().unwrap().object_id = "BG-OID".into()),
            "target.break_glass",
        ),
        (
            "guest by type",
            Case::alice().with(|c| c.target.as_mut().unwrap().user_type = Some("Guest".into())),
            "target.guest",
        ),
        (
            "guest by upn form",
            Case::for_upn("bob_fabrikam.com#EXT#@contoso.com"),
            "target.guest",
        ),
        (
            "disabled",
            Case::alice().with(|c| c.target.as_mut().unwrap().account_enabled = false),
            "target.already_disabled",
        ),
        (
            "directory answered for someone else",
            Case::alice().with(|c| c.target.as_mut().unwrap().upn = "mallory@contoso.com".into()),
            "target.upn_mismatch",
        ),
        (
            "enabled account cannot be released",
            Case::alice().with(|c| c.request.kind = RequestKind::Release),
            "target.not_disabled",
        ),
    ]);
}

#[test]
fn target_rules_allow_ordinary_and_permitted_accounts() {
    assert_allowed(vec![
        ("member", Case::alice()),
        (
            "guest with allow_guests on",
            Case::alice().with(|c| {
                c.settings.allow_guests = true;
                c.target.as_mut().unwrap().user_type = Some("Guest".into());
            }),
        ),
        (
            "guest form with allow_guests on",
            Case::for_upn("bob_fabrikam.com#EXT#@contoso.com")
                .with(|c| c.settings.allow_guests = true),
        ),
        (
            "disabled account released",
            Case::alice().with(|c| {
                c.request.kind = RequestKind::Release;
                c.target.as_mut().unwrap().account_enabled = false;
            }),
        ),
    ]);
}

#[test]
fn break_glass_refusal_points_to_the_manual_procedure() {
    let refusal = Case::alice()
        .with(|c| c.target.as_mut().unwrap().object_id = "bg-oid".into())
        .refusal();
    let hint = refusal.hint.expect("a hint");
    assert!(hint.contains("rotate"), "{hint}");
    assert!(hint.contains("sign-ins"), "{hint}");
    assert!(hint.contains("identity owners"), "{hint}");
}

#[test]
fn disabled_account_is_offered_a_revoke_only_containment() {
    let case = Case::alice().with(|c| c.target.as_mut().unwrap().account_enabled = false);
    let hint = case.refusal().hint.expect("a hint");
    assert!(hint.contains("revoke-only"), "{hint}");

    let decision = evaluate_revoke_only(
        &case.settings,
        &case.request,
        case.target.as_ref(),
        case.incident.as_ref(),
    );
    let plan = decision.plan().expect("revoke-only proceeds");
    assert!(plan.revoke_only);
    assert!(!plan.steps.contains(&StepKind::BlockSignIn));
    assert!(plan.steps.contains(&StepKind::RevokeSessions));
}

#[test]
fn incident_rules_refuse_unusable_incidents() {
    let with_incident = |change: fn(&mut IncidentFacts)| {
        Case::alice().with(|c| change(c.incident.as_mut().unwrap()))
    };
    assert_refused(vec![
        (
            "missing",
            Case::alice().with(|c| c.incident = None),
            "incident.missing",
        ),
        (
            "wrong category",
            with_incident(|i| i.category = Some("hardware".into())),
            "incident.category_not_allowed",
        ),
        (
            "wrong subcategory",
            with_incident(|i| i.subcategory = Some("phishing".into())),
            "incident.category_not_allowed",
        ),
        (
            "no category",
            with_incident(|i| i.category = None),
            "incident.category_not_allowed",
        ),
        (
            "no requester",
            with_incident(|i| i.requester = None),
            "incident.missing_field",
        ),
        (
            "blank affected user",
            with_incident(|i| i.affected_user = Some("  ".into())),
            "incident.missing_field",
        ),
        (
            "no justification",
            with_incident(|i| i.justification = None),
            "incident.missing_field",
        ),
        (
            "other affected user",
            with_incident(|i| i.affected_user = Some("carol@contoso.com".into())),
            "incident.affected_user_mismatch",
        ),
        (
            "resolved",
            with_incident(|i| i.state = "6".into()),
            "incident.closed",
        ),
        (
            "closed",
            with_incident(|i| i.state = "7".into()),
            "incident.closed",
        ),
        (
            "canceled",
            with_incident(|i| i.state = "8".into()),
            "incident.closed",
        ),
        (
            "other incident returned",
            with_incident(|i| i.number = "INC0099999".into()),
            "incident.number_mismatch",
        ),
    ]);
}

#[test]
fn incident_rules_allow_open_incidents_of_listed_categories() {
    let with_incident = |change: fn(&mut IncidentFacts)| {
        Case::alice().with(|c| change(c.incident.as_mut().unwrap()))
    };
    assert_allowed(vec![
        ("new", with_incident(|i| i.state = "1".into())),
        ("in progress", with_incident(|i| i.state = "2".into())),
        ("on hold", with_incident(|i| i.state = "3".into())),
        (
            "category in other case",
            with_incident(|i| i.category = Some("Security".into())),
        ),
        (
            "bare category configured",
            Case::alice().with(|c| {
                c.settings.incident_categories = vec!["security".into()];
                c.incident.as_mut().unwrap().subcategory = None;
            }),
        ),
    ]);
}

#[test]
fn missing_field_refusal_names_the_field() {
    let refusal = Case::alice()
        .with(|c| c.incident.as_mut().unwrap().justification = None)
        .refusal();
    assert!(refusal.reason.contains("justification"), "{refusal:?}");
}

#[test]
fn classification_picks_runbook_approvals_and_rule() {
    let cases = [
        (
            "standard",
            Case::alice(),
            Classification::Standard,
            1,
            "standard",
            "standard.default",
        ),
        (
            "privileged by group",
            Case::alice()
                .with(|c| c.target.as_mut().unwrap().member_of = vec!["TIER0-ADMINS".into()]),
            Classification::Privileged,
            2,
            "privileged",
            "privileged.group_member",
        ),
        (
            "privileged by role",
            Case::alice()
                .with(|c| c.target.as_mut().unwrap().role_ids = vec!["global-admin-role".into()]),
            Classification::Privileged,
            2,
            "privileged",
            "privileged.role_holder",
        ),
        (
            "privileged wins over service account",
            Case::for_upn("svc-x@contoso.com")
                .with(|c| c.target.as_mut().unwrap().member_of = vec!["tier0-admins".into()]),
            Classification::Privileged,
            2,
            "privileged",
            "privileged.group_member",
        ),
        (
            "service account by group",
            Case::alice().with(|c| c.target.as_mut().unwrap().member_of = vec!["svc-group".into()]),
            Classification::ServiceAccount,
            1,
            "service_account",
            "service_account.group_member",
        ),
        (
            "service account by pattern",
            Case::for_upn("SVC-Backup@contoso.com"),
            Classification::ServiceAccount,
            1,
            "service_account",
            "service_account.upn_pattern",
        ),
    ];
    for (name, case, classification, approvals, runbook, rule) in cases {
        let plan = case.plan();
        assert_eq!(plan.classification, classification, "{name}");
        assert_eq!(plan.required_approvals, approvals, "{name}");
        assert_eq!(plan.runbook, runbook, "{name}");
        assert_eq!(plan.rule, rule, "{name}");
    }
}

#[test]
fn privileged_plan_carries_an_on_call_notice() {
    let plan = Case::alice()
        .with(|c| c.target.as_mut().unwrap().member_of = vec!["tier0-admins".into()])
        .plan();
    assert!(
        plan.notices.iter().any(|n| n.contains("On-call")),
        "{plan:?}"
    );
    assert!(plan.steps.contains(&StepKind::BlockSignIn));
}

#[test]
fn service_account_runbook_keeps_sign_in_enabled() {
    let plan = Case::for_upn("svc-backup@contoso.com").plan();
    assert!(!plan.steps.contains(&StepKind::BlockSignIn));
    assert!(plan.steps.contains(&StepKind::NotifyOwner));
    assert!(plan.revoke_only);
}

#[test]
fn release_uses_the_release_runbook_and_keeps_dual_control() {
    let release = |privileged: bool| {
        Case::alice()
            .with(|c| {
                c.request.kind = RequestKind::Release;
                let target = c.target.as_mut().unwrap();
                target.account_enabled = false;
                if privileged {
                    target.member_of = vec!["tier0-admins".into()];
                }
            })
            .plan()
    };
    let standard = release(false);
    assert_eq!(standard.runbook, "release");
    assert_eq!(standard.required_approvals, 1);
    assert!(standard.steps.contains(&StepKind::EnableSignIn));
    assert!(!standard.revoke_only);
    assert_eq!(release(true).required_approvals, 2);
}

fn auto_rule() -> AutoApproveRule {
    AutoApproveRule {
        name: "siem-high-risk".into(),
        sources: vec![Source::Siem],
        min_risk: Risk::High,
    }
}

#[test]
fn auto_approve_fires_only_for_siem_high_risk_standard_targets() {
    let siem = |change: fn(&mut Case)| {
        Case::alice().with(|c| {
            c.settings.auto_approve = Some(auto_rule());
            c.request.source = Source::Siem;
            c.request.risk = Some(Risk::High);
            change(c);
        })
    };
    let cases: Vec<(&str, Case, Option<&str>)> = vec![
        ("siem and high", siem(|_| {}), Some("siem-high-risk")),
        ("rule off", siem(|c| c.settings.auto_approve = None), None),
        (
            "teams source",
            siem(|c| c.request.source = Source::Teams),
            None,
        ),
        ("api source", siem(|c| c.request.source = Source::Api), None),
        (
            "medium risk",
            siem(|c| c.request.risk = Some(Risk::Medium)),
            None,
        ),
        ("no risk", siem(|c| c.request.risk = None), None),
        (
            "privileged target",
            siem(|c| c.target.as_mut().unwrap().member_of = vec!["tier0-admins".into()]),
            None,
        ),
        (
            "service account",
            siem(|c| c.target.as_mut().unwrap().member_of = vec!["svc-group".into()]),
            None,
        ),
        (
            "teams listed in an unvalidated rule",
            siem(|c| {
                c.settings.auto_approve.as_mut().unwrap().sources = vec![Source::Teams];
                c.request.source = Source::Teams;
            }),
            None,
        ),
        (
            "medium allowed by the rule",
            siem(|c| {
                c.settings.auto_approve.as_mut().unwrap().min_risk = Risk::Medium;
                c.request.risk = Some(Risk::Medium);
            }),
            Some("siem-high-risk"),
        ),
    ];
    for (name, case, expected) in cases {
        let plan = case.plan();
        assert_eq!(plan.auto_approved_by.as_deref(), expected, "{name}");
        let approvals = plan.required_approvals;
        assert!(approvals >= 1, "{name}: {approvals}");
    }
}

fn approver<'a>(prior: &'a [String]) -> ApproverFacts<'a> {
    ApproverFacts {
        object_id: Some("approver-oid"),
        tenant_id: Some(TENANT),
        in_approver_group: true,
        requester_id: REQUESTER,
        prior_approver_ids: prior,
    }
}

#[test]
fn approvers_must_be_identified_in_tenant_in_group_and_distinct() {
    let settings = settings();
    let none: Vec<String> = vec![];
    let me_before = vec!["APPROVER-OID".to_owned()];
    let other_before = vec!["someone-else".to_owned()];

    let refused: Vec<(&str, ApproverFacts, &str)> = vec![
        (
            "missing aadObjectId",
            ApproverFacts {
                object_id: None,
                ..approver(&none)
            },
            "approver.unidentified",
        ),
        (
            "blank aadObjectId",
            ApproverFacts {
                object_id: Some(" "),
                ..approver(&none)
            },
            "approver.unidentified",
        ),
        (
            "another tenant",
            ApproverFacts {
                tenant_id: Some("tenant-2"),
                ..approver(&none)
            },
            "approver.other_tenant",
        ),
        (
            "no tenant",
            ApproverFacts {
                tenant_id: None,
                ..approver(&none)
            },
            "approver.other_tenant",
        ),
        (
            "outside the approver group",
            ApproverFacts {
                in_approver_group: false,
                ..approver(&none)
            },
            "approver.not_in_group",
        ),
        (
            "requester approving own request",
            ApproverFacts {
                object_id: Some(REQUESTER),
                ..approver(&none)
            },
            "approver.self_approval",
        ),
        (
            "same approver twice",
            approver(&me_before),
            "approver.already_approved",
        ),
    ];
    for (name, facts, rule) in refused {
        let refusal = authorize_approver(&settings, TENANT, &facts).expect_err(name);
        assert_eq!(refusal.rule, rule, "{name}: {refusal:?}");
    }

    let allowed = [
        ("first approver", approver(&none)),
        ("second distinct approver", approver(&other_before)),
    ];
    for (name, facts) in allowed {
        let result = authorize_approver(&settings, TENANT, &facts);
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

fn config_error(change: fn(&mut PolicySettings)) -> PolicyConfigError {
    let mut settings = settings();
    change(&mut settings);
    settings.validate().expect_err("invalid settings accepted")
}

#[test]
fn settings_validation_rejects_unsafe_or_broken_policies() {
    assert_eq!(settings().validate(), Ok(()));
    let cases: Vec<(&str, PolicyConfigError)> = vec![
        (
            "unknown step",
            config_error(|s| s.runbooks.standard.push("delete_user".into())),
        ),
        (
            "empty runbook",
            config_error(|s| s.runbooks.privileged.clear()),
        ),
        (
            "release step in containment",
            config_error(|s| s.runbooks.standard.push("enable_sign_in".into())),
        ),
        (
            "containment step in release",
            config_error(|s| s.runbooks.release.push("block_sign_in".into())),
        ),
        (
            "release without enable",
            config_error(|s| s.runbooks.release.retain(|s| s != "enable_sign_in")),
        ),
        (
            "duplicate step",
            config_error(|s| s.runbooks.standard.push("verify".into())),
        ),
        ("no domains", config_error(|s| s.allowed_domains.clear())),
        (
            "duplicate id",
            config_error(|s| s.privileged_group_ids.push("TIER0-ADMINS".into())),
        ),
        (
            "auto-approve from teams",
            config_error(|s| {
                s.auto_approve = Some(AutoApproveRule {
                    sources: vec![Source::Siem, Source::Teams],
                    ..auto_rule()
                })
            }),
        ),
        (
            "no approvers",
            config_error(|s| s.approver_group_ids.clear()),
        ),
        (
            "no categories",
            config_error(|s| s.incident_categories.clear()),
        ),
    ];
    let expected = [
        "unknown step 'delete_user'",
        "policy.runbooks.privileged is empty",
        "'enable_sign_in' belongs only in the release",
        "'block_sign_in' restricts the account",
        "must contain 'enable_sign_in'",
        "'verify' is listed twice",
        "allowed_domains is empty",
        "'TIER0-ADMINS' appears more than once",
        "'teams' is not allowed",
        "approver_group_ids is empty",
        "incident_categories is empty",
    ];
    for ((name, error), text) in cases.into_iter().zip(expected) {
        let message = error.to_string();
        assert!(message.contains(text), "{name}: {message}");
    }
}

#[test]
fn settings_parse_from_toml_with_defaults() {
    let settings: PolicySettings = toml::from_str(
        r#"
        allowed_domains = ["contoso.com"]
        approver_group_ids = ["approvers"]
        approval_timeout = "45m"
        [auto_approve]
        name = "siem-high-risk"
        [runbooks]
        privileged = ["servicenow_start", "block_sign_in", "revoke_sessions",
                      "reset_auth_methods", "verify", "teams_notice",
                      "servicenow_summary"]
        "#,
    )
    .unwrap();
    assert_eq!(settings.validate(), Ok(()));
    assert_eq!(settings.approval_timeout.as_secs(), 45 * 60);
    assert_eq!(settings.auto_approve.unwrap().sources, vec![Source::Siem]);
    assert_eq!(settings.runbooks.standard.len(), 6);
    assert_eq!(settings.runbooks.privileged[3], "reset_auth_methods");
}

#[test]
fn runbook_from_settings_reaches_the_plan() {
    let plan = Case::alice()
        .with(|c| {
            c.settings
                .runbooks
                .privileged
                .insert(3, "reset_auth_methods".into());
            c.target.as_mut().unwrap().role_ids = vec!["global-admin-role".into()];
        })
        .plan();
    assert_eq!(plan.steps[3], StepKind::ResetAuthMethods);
}

#[test]
fn unvalidated_broken_runbook_refuses_rather_than_guessing() {
    let refusal = Case::alice()
        .with(|c| c.settings.runbooks.standard = vec!["nuke".into()])
        .refusal();
    assert_eq!(refusal.rule, "policy.invalid_runbook");
}

#[test]
fn explanation_of_a_plan_names_rule_approvals_and_steps() {
    let case =
        Case::alice().with(|c| c.target.as_mut().unwrap().member_of = vec!["tier0-admins".into()]);
    let text = explain(
        &case.settings,
        &case.request,
        case.target.as_ref(),
        case.incident.as_ref(),
    )
    .to_string();
    for expected in [
        "Decision: proceed",
        "Rule: privileged.group_member",
        "Classification: privileged",
        "Approvals needed: 2",
        "servicenow_start -> block_sign_in",
        "Auto-approve: off",
    ] {
        assert!(text.contains(expected), "missing '{expected}' in:\n{text}");
    }
}

#[test]
fn explanation_of_a_refusal_gives_reason_and_hint() {
    let case = Case::alice().with(|c| c.target.as_mut().unwrap().object_id = "bg-oid".into());
    let text = explain(
        &case.settings,
        &case.request,
        case.target.as_ref(),
        case.incident.as_ref(),
    )
    .to_string();
    assert!(text.contains("Decision: refused"), "{text}");
    assert!(text.contains("Rule: target.break_glass"), "{text}");
    assert!(
        text.contains("Hint: follow the break-glass procedure"),
        "{text}"
    );
}

#[test]
fn explanation_without_an_incident_says_it_was_not_checked() {
    let mut request = request("alice@contoso.com");
    request.incident_number = String::new();
    let mut settings = settings();
    settings.auto_approve = Some(auto_rule());
    let target = target("alice@contoso.com");

    let explanation = explain(&settings, &request, Some(&target), None);
    let text = explanation.to_string();
    assert!(text.contains("incident not checked"), "{text}");
    assert!(text.contains("source 'teams' is not trusted"), "{text}");
}

#[test]
fn upn_parse_is_the_only_way_to_a_normalised_name() {
    let upn = Upn::parse(" Bob.O'Neil+sec@CONTOSO.com").unwrap();
    assert_eq!(upn.to_string(), "bob.o'neil+sec@contoso.com");
    assert_eq!(upn.domain(), "contoso.com");
    let too_long = format!("{}@contoso.com", "a".repeat(65));
    assert!(Upn::parse(&too_long).is_err());
}
