use proptest::prelude::*;

use super::*;

fn sample() -> AuditRecord {
    AuditRecord {
        time: UnixMillis::new(1_735_689_600_123).unwrap(),
        decision_id: "01JGX6W2T1S9ZK".to_owned(),
        proxy_id: "proxy-b".to_owned(),
        principal: Some(SpiffeId::new("spiffe://example.org/agent/a").unwrap()),
        action: "tools/call".to_owned(),
        resource: "Tool::\"b/search\"".to_owned(),
        decision: Decision::Deny,
        policies: vec!["deny-after-hours".to_owned()],
        reasons: vec!["outside business hours".to_owned()],
        policy_version: "v42".to_owned(),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap()),
        peer_cert_serial: Some("01ab".parse().unwrap()),
        request: RequestDigest {
            method: "POST".to_owned(),
            path: "/mcp".to_owned(),
            body_sha256: BodyDigest::of(b"{}"),
        },
        rpc: None,
    }
}

const GOLDEN: &str = concat!(
    r#"{"action":"tools/call","decision":"deny","decision_id":"01JGX6W2T1S9ZK","#,
    r#""peer_cert_serial":"01ab","policies":["deny-after-hours"],"policy_version":"v42","#,
    r#""principal":"spiffe://example.org/agent/a","proxy_id":"proxy-b","#,
    r#""reasons":["outside business hours"],"#,
    r#""request":{"body_sha256":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","method":"POST","path":"/mcp"},"#,
    r#""resource":"Tool::\"b/search\"","time_ms":1735689600123,"#,
    r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","v":1}"#
);

#[test]
fn encoding_is_the_documented_canonical_json() {
    let bytes = sample().encode().unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), GOLDEN);
    assert_eq!(AuditRecord::decode(&bytes).unwrap(), sample());
}

#[test]
fn absent_optionals_are_explicit_nulls() {
    let mut r = sample();
    r.principal = None;
    r.trace_id = None;
    r.peer_cert_serial = None;
    r.decision = Decision::Allow;
    let text = String::from_utf8(r.encode().unwrap()).unwrap();
    assert!(text.contains(r#""peer_cert_serial":null"#));
    assert!(text.contains(r#""principal":null"#));
    assert!(text.contains(r#""trace_id":null"#));
    assert!(text.contains(r#""decision":"allow""#));
    assert_eq!(AuditRecord::decode(text.as_bytes()).unwrap(), r);
    // Leaving the key out is another spelling of the same record: refused.
    let shorter = text.replace(r#""trace_id":null,"#, "");
    assert!(matches!(
        AuditRecord::decode(shorter.as_bytes()),
        Err(RecordError::NonCanonical { .. })
    ));
}

fn decode_err(text: &str) -> RecordError {
    AuditRecord::decode(text.as_bytes()).unwrap_err()
}

#[test]
fn decode_refuses_versions_junk_and_non_canonical_spellings() {
    assert!(matches!(
        decode_err(&GOLDEN.replace(r#""v":1"#, r#""v":3"#)),
        RecordError::UnknownVersion(3)
    ));
    // A v1 record relabelled v2 lacks `rpc`.
    assert!(matches!(
        decode_err(&GOLDEN.replace(r#""v":1"#, r#""v":2"#)),
        RecordError::Malformed(_)
    ));
    assert!(matches!(
        decode_err(&GOLDEN.replace(r#","v":1"#, "")),
        RecordError::NoVersion
    ));
    assert!(matches!(decode_err("not json"), RecordError::NotJson(_)));
    assert!(matches!(decode_err("[1]"), RecordError::NoVersion));
    assert!(matches!(decode_err(r#"{"v":"1"}"#), RecordError::NoVersion));
    assert!(matches!(decode_err(r#"{"v":-1}"#), RecordError::NoVersion));
    // The version probe skips other keys but still checks their syntax.
    assert!(matches!(
        decode_err(r#"{"a":[1,{"b":nul}],"v":1}"#),
        RecordError::NotJson(_)
    ));
    assert!(matches!(
        decode_err(&GOLDEN[..GOLDEN.len() - 1]),
        RecordError::NotJson(_)
    ));
    assert!(matches!(
        decode_err(&format!("{GOLDEN} x")),
        RecordError::NotJson(_)
    ));
    assert!(matches!(
        decode_err(r#"{"a":[1,{"b":null}],"v":7}"#),
        RecordError::UnknownVersion(7)
    ));

    let unknown = decode_err(&GOLDEN.replace(r#""v":1"#, r#""v":1,"zzz":0"#));
    assert!(matches!(unknown, RecordError::Malformed(_)));
    assert!(
        unknown.to_string().contains("unknown field `zzz`"),
        "{unknown}"
    );

    let bad_trace = decode_err(&GOLDEN.replace(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00000000000000000000000000000000",
    ));
    assert!(bad_trace.to_string().contains("trace id"), "{bad_trace}");
    let upper = decode_err(&GOLDEN.replace("4bf92f3577b34da6", "4BF92F3577B34DA6"));
    assert!(matches!(upper, RecordError::Malformed(_)), "{upper}");
    let bad_principal = decode_err(&GOLDEN.replace("spiffe://example.org", "https://example.org"));
    assert!(
        bad_principal.to_string().contains("spiffe://"),
        "{bad_principal}"
    );
    let late = decode_err(&GOLDEN.replace("1735689600123", "9007199254740992"));
    assert!(late.to_string().contains("2^53"), "{late}");
    let decision = decode_err(&GOLDEN.replace(r#""deny""#, r#""Deny""#));
    assert!(matches!(decision, RecordError::Malformed(_)), "{decision}");
    let dup = decode_err(&GOLDEN.replace(r#""v":1"#, r#""v":1,"v":1"#));
    assert!(matches!(dup, RecordError::Malformed(_)), "{dup}");

    for (spelling, offset) in [
        (GOLDEN.replace(r#""action":"#, r#" "action":"#), 1),
        (GOLDEN.replace("tools/call", r"tools\/call"), 16),
        (
            GOLDEN.replace("proxy-b", r"\u0070roxy-b"),
            GOLDEN.find("proxy-b").unwrap(),
        ),
    ] {
        match decode_err(&spelling) {
            RecordError::NonCanonical { offset: got } => assert_eq!(got, offset, "{spelling}"),
            other => panic!("{spelling}: {other}"),
        }
    }
    // Keys out of order.
    let reordered = GOLDEN.replace(
        r#"{"action":"tools/call","decision":"deny","#,
        r#"{"decision":"deny","action":"tools/call","#,
    );
    assert!(matches!(
        decode_err(&reordered),
        RecordError::NonCanonical { offset: 2 }
    ));
}

/// Reading back from the log skips only the canonical check: the same
/// record from a non-canonical spelling, and every other refusal intact.
#[test]
fn logged_entries_decode_without_the_canonical_check_only() {
    let golden = AuditRecord::decode(GOLDEN.as_bytes()).unwrap();
    let spaced = GOLDEN.replace(r#""action":"#, r#" "action":"#);
    let reordered = GOLDEN.replace(
        r#"{"action":"tools/call","decision":"deny","#,
        r#"{"decision":"deny","action":"tools/call","#,
    );
    for spelling in [spaced, reordered] {
        assert!(AuditRecord::decode(spelling.as_bytes()).is_err());
        assert_eq!(
            AuditRecord::decode_logged(spelling.as_bytes()).unwrap(),
            golden
        );
    }
    let logged_err = |text: String| AuditRecord::decode_logged(text.as_bytes()).unwrap_err();
    assert!(matches!(
        logged_err(GOLDEN.replace(r#""v":1"#, r#""v":3"#)),
        RecordError::UnknownVersion(3)
    ));
    assert!(matches!(
        logged_err(GOLDEN.replace(r#""v":1"#, r#""v":1,"zzz":0"#)),
        RecordError::Malformed(_)
    ));
    assert!(matches!(
        logged_err(GOLDEN.replace(r#""v":1"#, r#""v":2"#)),
        RecordError::Malformed(_)
    ));
    assert!(matches!(
        logged_err(GOLDEN.replace(r#""v":1"#, r#""v":1,"v":1"#)),
        RecordError::Malformed(_)
    ));
}

#[test]
fn json_rpc_calls_are_schema_v2_with_rpc_in_key_order() {
    let mut r = sample();
    r.rpc = Some(RpcCall {
        args_sha256: BodyDigest::of(b"null"),
        method: "tools/call".to_owned(),
        protocol: "mcp".to_owned(),
        target: Some("delete_records".to_owned()),
    });
    let text = String::from_utf8(r.encode().unwrap()).unwrap();
    let expected = GOLDEN
        .replace(
            r#","time_ms""#,
            concat!(
                r#","rpc":{"args_sha256":"74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b","#,
                r#""method":"tools/call","protocol":"mcp","target":"delete_records"},"time_ms""#
            ),
        )
        .replace(r#""v":1"#, r#""v":2"#);
    assert_eq!(text, expected);
    assert_eq!(AuditRecord::decode(text.as_bytes()).unwrap(), r);
    // v1 has no `rpc`; v2 has nothing else new.
    let as_v1 = text.replace(r#""v":2"#, r#""v":1"#);
    assert!(matches!(decode_err(&as_v1), RecordError::Malformed(_)));
    let extra = text.replace(
        r#""target":"delete_records""#,
        r#""target":"delete_records","x":1"#,
    );
    assert!(matches!(decode_err(&extra), RecordError::Malformed(_)));
}

#[test]
fn oversized_records_are_refused_before_they_reach_the_log() {
    let mut r = sample();
    r.reasons = vec!["x".repeat(MAX_ENTRY_LEN)];
    assert!(matches!(r.encode(), Err(RecordError::TooLarge(_))));
}

#[test]
fn field_types_parse_strictly() {
    assert!(UnixMillis::new(MAX_UNIX_MILLIS).is_ok());
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_234);
    assert_eq!(UnixMillis::from_system_time(t).unwrap().get(), 1_234);
    let before = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
    assert_eq!(
        UnixMillis::from_system_time(before),
        Err(FieldError::BeforeEpoch)
    );
    assert!(TraceId::new([0; 16]).is_err());
    assert_eq!(
        UnixMillis::new(MAX_UNIX_MILLIS + 1),
        Err(FieldError::Time(MAX_UNIX_MILLIS + 1))
    );
    assert!("".parse::<CertSerial>().is_err());
    assert!("abc".parse::<CertSerial>().is_err());
    assert!("00".repeat(21).parse::<CertSerial>().is_err());
    assert!("00".repeat(20).parse::<CertSerial>().is_ok());
    assert!("ab".repeat(31).parse::<BodyDigest>().is_err());
    assert_eq!(
        BodyDigest::of(b"").to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9/_:.-]{0,20}",
        any::<String>().prop_map(|s| s.chars().take(30).collect()),
        Just("\"\\\u{0}\u{1f}\u{7f}\u{2028}é😀".to_owned()),
    ]
}

prop_compose! {
    fn record()(
        time in 0..=MAX_UNIX_MILLIS,
        ids in (text(), text(), text(), text(), text()),
        principal in proptest::option::of("[a-z]{1,10}"),
        allow: bool,
        policies in proptest::collection::vec(text(), 0..4),
        reasons in proptest::collection::vec(text(), 0..4),
        trace in proptest::option::of(any::<[u8; 16]>().prop_filter("non-zero", |b| *b != [0; 16])),
        serial in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=20)),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        method in text(),
        rpc in proptest::option::of((text(), text(), proptest::option::of(text()), any::<[u8; 8]>())),
    ) -> AuditRecord {
        let (decision_id, proxy_id, action, resource, policy_version) = ids;
        AuditRecord {
            time: UnixMillis::new(time).unwrap(),
            decision_id,
            proxy_id,
            principal: principal.map(|p| SpiffeId::new(&format!("spiffe://example.org/agent/{p}")).unwrap()),
            action,
            resource,
            decision: if allow { Decision::Allow } else { Decision::Deny },
            policies,
            reasons,
            policy_version,
            trace_id: trace.map(|t| TraceId::new(t).unwrap()),
            peer_cert_serial: serial.map(|s| CertSerial::new(&s).unwrap()),
            request: RequestDigest { method, path: "/p".to_owned(), body_sha256: BodyDigest::of(&body) },
            rpc: rpc.map(|(protocol, method, target, args)| RpcCall {
                args_sha256: BodyDigest::of(&args),
                method,
                protocol,
                target,
            }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_record_round_trips_byte_for_byte(r in record()) {
        let bytes = r.encode().unwrap();
        let back = AuditRecord::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.encode().unwrap(), bytes.clone());
        prop_assert_eq!(AuditRecord::decode_logged(&bytes).unwrap(), r);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let strict = AuditRecord::decode(&bytes);
        let logged = AuditRecord::decode_logged(&bytes);
        // Whatever the strict decoder accepts, the log reader reads the same.
        if let Ok(r) = strict {
            prop_assert_eq!(logged.unwrap(), r);
        }
    }
}
