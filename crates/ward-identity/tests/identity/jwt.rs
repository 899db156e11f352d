//! JWT-SVID verification refuses every forgery and misuse we know of.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ward_identity::jwt::{self, DEFAULT_JWT_TTL, JwtError};

use crate::common::{agent, fixture};

const NOW: i64 = 1_800_000_000;

#[test]
fn issues_and_verifies() {
    let f = fixture();
    let token = f
        .jwt
        .issue(&agent("a"), &["tools", "planner"], DEFAULT_JWT_TTL, NOW)
        .unwrap();
    let claims = jwt::verify(&token, &f.bundle, "planner", NOW + 10).unwrap();
    assert_eq!(claims.sub, agent("a"));
    assert_eq!(claims.aud, ["tools", "planner"]);
    assert_eq!(claims.exp, NOW + 300);
    assert!(claims.jti.as_deref().is_some_and(|j| j.len() >= 20));
    let other = f
        .jwt
        .issue(&agent("a"), &["tools"], DEFAULT_JWT_TTL, NOW)
        .unwrap();
    assert_ne!(
        jwt::verify(&other, &f.bundle, "tools", NOW).unwrap().jti,
        claims.jti
    );
    // Header carries kid and alg.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(f.jwt.authority().kid.as_str()));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

#[test]
fn refuses_time_audience_and_domain_violations() {
    let f = fixture();
    let token = f
        .jwt
        .issue(&agent("a"), &["tools"], DEFAULT_JWT_TTL, NOW)
        .unwrap();
    assert!(matches!(
        jwt::verify(&token, &f.bundle, "tools", NOW + 300 + 30),
        Err(JwtError::Expired { .. })
    ));
    // Within the 30 s leeway it still passes.
    assert!(jwt::verify(&token, &f.bundle, "tools", NOW + 300 + 29).is_ok());
    assert!(matches!(
        jwt::verify(&token, &f.bundle, "tools", NOW - 31),
        Err(JwtError::NotYetValid { .. })
    ));
    assert!(matches!(
        jwt::verify(&token, &f.bundle, "admin", NOW),
        Err(JwtError::Audience { .. })
    ));
    let foreign = ward_identity::SpiffeId::new("spiffe://evil.test/agent/a").unwrap();
    let token = f
        .jwt
        .issue(&foreign, &["tools"], DEFAULT_JWT_TTL, NOW)
        .unwrap();
    assert!(matches!(
        jwt::verify(&token, &f.bundle, "tools", NOW),
        Err(JwtError::WrongTrustDomain { .. })
    ));
    assert!(
        f.jwt.issue(&agent("a"), &[], DEFAULT_JWT_TTL, NOW).is_err(),
        "audience is required"
    );
}

#[test]
fn refuses_forgeries() {
    let f = fixture();
    let token = f
        .jwt
        .issue(&agent("a"), &["tools"], DEFAULT_JWT_TTL, NOW)
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    // Unknown signer.
    let rogue = fixture();
    let forged = rogue
        .jwt
        .issue(&agent("a"), &["tools"], DEFAULT_JWT_TTL, NOW)
        .unwrap();
    assert!(matches!(
        jwt::verify(&forged, &f.bundle, "tools", NOW),
        Err(JwtError::UnknownKid(_))
    ));

    // Rogue signer claiming our kid.
    let rogue_parts: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], rogue_parts[1], rogue_parts[2]);
    assert!(matches!(
        jwt::verify(&spliced, &f.bundle, "tools", NOW),
        Err(JwtError::BadSignature)
    ));

    // Payload swapped for one naming another subject, original signature kept.
    let claims =
        serde_json::json!({"sub": agent("admin").to_string(), "aud": ["tools"], "exp": NOW + 300});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let swapped = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert!(matches!(
        jwt::verify(&swapped, &f.bundle, "tools", NOW),
        Err(JwtError::BadSignature)
    ));

    // alg=none, and HS256 keyed with public information (algorithm confusion).
    let kid = f.jwt.authority().kid;
    for alg in ["none", "HS256"] {
        let header = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string());
        let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(b"sig"));
        let err = jwt::verify(&token, &f.bundle, "tools", NOW).unwrap_err();
        assert!(
            matches!(err, JwtError::Algorithm(_) | JwtError::Malformed(_)),
            "{alg}: {err}"
        );
    }

    // No kid.
    let header = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": "ES256"}).to_string());
    let token = format!("{header}.{}.{}", parts[1], parts[2]);
    assert!(matches!(
        jwt::verify(&token, &f.bundle, "tools", NOW),
        Err(JwtError::MissingKid)
    ));

    // Garbage and oversized input.
    assert!(matches!(
        jwt::verify("a.b", &f.bundle, "tools", NOW),
        Err(JwtError::Malformed(_))
    ));
    let huge = "a".repeat(jwt::MAX_TOKEN_LEN + 1);
    assert!(matches!(
        jwt::verify(&huge, &f.bundle, "tools", NOW),
        Err(JwtError::TooLarge(_))
    ));
}
