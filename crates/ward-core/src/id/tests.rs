use proptest::prelude::*;

use super::*;

/// Examples drawn from the SPIFFE ID specification and go-spiffe's test table.
#[test]
fn spec_table_valid() {
    for (input, td, path) in [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/path", "example.org", "/path"),
        (
            "spiffe://example.org/path1/path2",
            "example.org",
            "/path1/path2",
        ),
        (
            "spiffe://example.org/PATH/Mixed",
            "example.org",
            "/PATH/Mixed",
        ),
        (
            "spiffe://td-with_chars.0/a-b_c.d",
            "td-with_chars.0",
            "/a-b_c.d",
        ),
        ("spiffe://td/.a/..b/...", "td", "/.a/..b/..."),
        ("spiffe://1.2.3.4/ip-like", "1.2.3.4", "/ip-like"),
    ] {
        let id = SpiffeId::new(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(id.trust_domain().as_str(), td, "{input}");
        assert_eq!(id.path(), path, "{input}");
        assert_eq!(id.to_string(), input);
        assert_eq!(id.as_str().parse::<SpiffeId>().unwrap(), id);
    }
}

#[test]
fn spec_table_invalid() {
    let long_td = format!("spiffe://{}", "a".repeat(256));
    let long_id = format!("spiffe://td/{}", "a".repeat(2048));
    let cases: Vec<(&str, IdError)> = vec![
        ("", IdError::Empty),
        ("spiffe://", IdError::MissingTrustDomain),
        ("spiffe:///path", IdError::MissingTrustDomain),
        ("SPIFFE://example.org", IdError::WrongScheme),
        ("https://example.org/a", IdError::WrongScheme),
        ("spiffe:example.org", IdError::WrongScheme),
        ("spiffe:/example.org", IdError::WrongScheme),
        ("example.org/a", IdError::WrongScheme),
        (
            "spiffe://Example.org",
            IdError::BadTrustDomainChar { found: 'E', at: 0 },
        ),
        (
            "spiffe://example.org:8080/a",
            IdError::BadTrustDomainChar { found: ':', at: 11 },
        ),
        (
            "spiffe://user@example.org/a",
            IdError::BadTrustDomainChar { found: '@', at: 4 },
        ),
        (
            "spiffe://example.org?q=1",
            IdError::BadTrustDomainChar { found: '?', at: 11 },
        ),
        ("spiffe://example.org/", IdError::EmptySegment),
        ("spiffe://example.org//a", IdError::EmptySegment),
        ("spiffe://example.org/a//b", IdError::EmptySegment),
        ("spiffe://example.org/a/", IdError::TrailingSlash),
        ("spiffe://example.org/.", IdError::DotSegment),
        ("spiffe://example.org/..", IdError::DotSegment),
        ("spiffe://example.org/a/./b", IdError::DotSegment),
        ("spiffe://example.org/a/../b", IdError::DotSegment),
        (
            "spiffe://example.org/a?x=1",
            IdError::BadPathChar { found: '?', at: 2 },
        ),
        (
            "spiffe://example.org/a#frag",
            IdError::BadPathChar { found: '#', at: 2 },
        ),
        (
            "spiffe://example.org/a%2Fb",
            IdError::BadPathChar { found: '%', at: 2 },
        ),
        (
            "spiffe://example.org/a b",
            IdError::BadPathChar { found: ' ', at: 2 },
        ),
        (
            "spiffe://example.org/ünï",
            IdError::BadPathChar { found: 'ü', at: 1 },
        ),
        (
            long_td.as_str(),
            IdError::TooLong {
                len: 256,
                max: MAX_TRUST_DOMAIN_LEN,
            },
        ),
        (
            long_id.as_str(),
            IdError::TooLong {
                len: long_id.len(),
                max: MAX_SPIFFE_ID_LEN,
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(SpiffeId::new(input), Err(want), "{input:?}");
    }
}

#[test]
fn trust_domain_forms() {
    assert_eq!(
        TrustDomain::new("example.org").unwrap().as_str(),
        "example.org"
    );
    assert_eq!(
        TrustDomain::new("spiffe://example.org").unwrap().as_str(),
        "example.org"
    );
    assert!(matches!(
        TrustDomain::new("spiffe://example.org/agent/a"),
        Err(IdError::Shape(_))
    ));
    assert!(TrustDomain::new("").is_err());
    assert!(TrustDomain::new("Example.org").is_err());
    assert_eq!(
        TrustDomain::new("example.org").unwrap().id().as_str(),
        "spiffe://example.org"
    );
}

#[test]
fn agent_ids_round_trip() {
    let td = TrustDomain::new("ward.test").unwrap();
    let name = AgentName::new("planner-1").unwrap();
    let id = td.agent_id(&name);
    assert_eq!(id.as_str(), "spiffe://ward.test/agent/planner-1");
    assert_eq!(id.path(), "/agent/planner-1");
    assert_eq!(id.agent_name(), Some(name));
    assert_eq!(SpiffeId::new(id.as_str()).unwrap(), id);
    assert_eq!(
        SpiffeId::new("spiffe://ward.test/admin/alice")
            .unwrap()
            .agent_name(),
        None
    );
    assert_eq!(
        SpiffeId::new("spiffe://ward.test/agent/a/b")
            .unwrap()
            .agent_name(),
        None
    );
}

#[test]
fn agent_name_rules() {
    for ok in ["a", "planner", "tool-server_2", "0abc", &"a".repeat(63)] {
        assert!(AgentName::new(ok).is_ok(), "{ok}");
    }
    for bad in ["", "-a", "_a", "A", "a.b", "a/b", "a b", &"a".repeat(64)] {
        assert!(AgentName::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn serde_parses_and_rejects() {
    let id: SpiffeId = serde_json::from_str("\"spiffe://td/agent/x\"").unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        "\"spiffe://td/agent/x\""
    );
    let err = serde_json::from_str::<SpiffeId>("\"spiffe://td/a/../b\"").unwrap_err();
    assert!(err.to_string().contains("`..`"), "{err}");
}

fn id_like() -> impl Strategy<Value = String> {
    // Mostly near-valid IDs, so the interesting rules get exercised, plus noise.
    let head = prop_oneof![
        Just("spiffe://".to_owned()),
        Just("spiffe:/".to_owned()),
        Just("SPIFFE://".to_owned()),
        Just(String::new()),
    ];
    let body = proptest::string::string_regex("[a-zA-Z0-9./_:@?#% -]{0,24}").unwrap();
    (head, body).prop_map(|(h, b)| h + &b)
}

proptest! {
    /// Our parser and the `spiffe` crate (written independently) accept and
    /// reject the same inputs — with one known, deliberate difference: the
    /// `spiffe` crate folds the case of the scheme and trust domain
    /// (`SPIFFE://Example.org`), while we, like go-spiffe and SPIRE, accept
    /// only the lowercase form, so every identity has exactly one spelling.
    /// For such inputs we must refuse, and the crate's reading must equal
    /// ours of the lowercased input.
    #[test]
    fn agrees_with_spiffe_crate(input in id_like()) {
        let ours = SpiffeId::new(&input);
        let theirs = spiffe::SpiffeId::new(&input);
        let authority_end = input.get(9..).and_then(|r| r.find('/')).map_or(input.len(), |i| i + 9);
        let authority = input.get(..authority_end).unwrap_or_default();
        let case_folded = authority.len() >= 9
            && authority.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("spiffe://"))
            && authority != authority.to_ascii_lowercase();
        if case_folded {
            prop_assert!(ours.is_err(), "accepted mixed case {:?}", input);
            let lowered = format!("{}{}", authority.to_ascii_lowercase(), input.get(authority_end..).unwrap_or_default());
            let ours_lowered = SpiffeId::new(&lowered);
            prop_assert_eq!(ours_lowered.is_ok(), theirs.is_ok(), "input {:?}", input);
        } else {
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "input {:?}: ours {:?}, theirs {:?}", input, ours, theirs);
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                prop_assert_eq!(a.trust_domain().as_str(), b.trust_domain().to_string());
                prop_assert_eq!(a.path(), b.path());
            }
        }
    }
}
