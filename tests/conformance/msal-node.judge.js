// Microsoft's own sign-in library for Node, `@azure/msal-node`, unmodified, against the
// emulator's Entra ID endpoints over HTTPS: the judge of the Entra half of the emulator. MSAL
// reads the OpenID configuration (it refuses one without jwks_uri or whose issuer is on another
// host), keys its cache on client_info, checks the id token's nonce and refuses http://
// authorities, so each test passes only if the emulator answers as Entra does.
//
// Needs EMULATOR_URL (https://127.0.0.1:PORT), EMULATOR_TENANT, EMULATOR_CLIENT_ID,
// EMULATOR_CLIENT_SECRET, EMULATOR_PUBLIC_CLIENT_ID, EMULATOR_USERNAME, EMULATOR_PASSWORD,
// EMULATOR_CLIENT_CERTIFICATE (a PEM file with the key and certificate registered to the client), and
// NODE_EXTRA_CA_CERTS naming the emulator's CA certificate; run-msal.sh starts the emulator with
// --tls and sets them.

"use strict";

const { test, before } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const msal = require("@azure/msal-node");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name} (run-msal.sh does)`);
  return v;
};
const base = env("EMULATOR_URL");
const tenant = env("EMULATOR_TENANT");
const clientId = env("EMULATOR_CLIENT_ID");
const clientSecret = env("EMULATOR_CLIENT_SECRET");
const publicClientId = env("EMULATOR_PUBLIC_CLIENT_ID");
const username = env("EMULATOR_USERNAME");
const password = env("EMULATOR_PASSWORD");
env("NODE_EXTRA_CA_CERTS");
assert.match(base, /^https:\/\//, "MSAL only takes https authorities");

const authority = `${base}/${tenant}`;
const knownAuthorities = [new URL(base).host]; // 127.0.0.1:PORT: no network instance discovery
const resourceScope = `${base}/user_impersonation`;
const redirectUri = "http://localhost/callback";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let config; // the v2.0 OpenID configuration
let jwks;

before(async () => {
  const res = await fetch(`${authority}/v2.0/.well-known/openid-configuration`);
  assert.equal(res.status, 200);
  config = await res.json();
  const keys = await fetch(config.jwks_uri);
  assert.equal(keys.status, 200);
  jwks = await keys.json();
});

/** Verifies a compact JWS against jwks_uri with node's crypto; returns header and claims. */
function verifyJwt(jwt) {
  const [h, p, s] = jwt.split(".");
  const header = JSON.parse(Buffer.from(h, "base64url").toString());
  assert.equal(header.alg, "RS256");
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is published at jwks_uri`);
  const key = crypto.createPublicKey({ key: jwk, format: "jwk" });
  const ok = crypto.verify("RSA-SHA256", Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url"));
  assert.ok(ok, "signature verifies against jwks_uri");
  // A token whose claims were changed must not verify.
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, "base64url")), oid: "x" })).toString("base64url");
  assert.ok(!crypto.verify("RSA-SHA256", Buffer.from(`${h}.${forged}`), key, Buffer.from(s, "base64url")));
  return { header, claims: JSON.parse(Buffer.from(p, "base64url").toString()) };
}

function assertIdToken(idToken, aud, nonce) {
  const { claims } = verifyJwt(idToken);
  assert.equal(claims.iss, config.issuer);
  assert.equal(claims.aud, aud);
  assert.equal(claims.tid, tenant);
  assert.equal(claims.ver, "2.0");
  assert.equal(claims.preferred_username, username);
  assert.match(claims.oid, GUID);
  assert.ok(claims.sub && claims.sub !== claims.oid, "pairwise sub");
  assert.ok(claims.name);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(claims.iat <= now + 5 && claims.nbf <= now + 5 && claims.exp > now);
  if (nonce !== undefined) assert.equal(claims.nonce, nonce);
  return claims;
}

async function whoAmI(accessToken) {
  const res = await fetch(`${base}/api/data/v9.2/WhoAmI`, {
    headers: { Authorization: `Bearer ${accessToken}`, Accept: "application/json" },
  });
  assert.equal(res.status, 200);
  return res.json();
}

function publicClient(cache) {
  return new msal.PublicClientApplication({
    auth: { clientId: publicClientId, authority, knownAuthorities },
    ...(cache ? { cache } : {}),
  });
}

test("the OpenID configuration has what MSAL and OpenID Connect Discovery require", () => {
  for (const field of [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "end_session_endpoint",
  ]) {
    assert.ok(config[field], `${field} missing`);
  }
  assert.equal(config.issuer, `${authority}/v2.0`);
  assert.ok(config.id_token_signing_alg_values_supported.includes("RS256"));
  assert.ok(config.token_endpoint.startsWith(`${authority}/`));
  assert.ok(jwks.keys.length >= 1 && jwks.keys.every((k) => k.kty === "RSA" && k.kid && k.n && k.e));
});

test("ConfidentialClientApplication: client credentials, then the same token from its cache", async () => {
  const cca = new msal.ConfidentialClientApplication({
    auth: { clientId, clientSecret, authority, knownAuthorities },
  });
  const request = { scopes: [`${base}/.default`] };
  const first = await cca.acquireTokenByClientCredential(request);
  assert.equal(first.tokenType, "Bearer");
  assert.equal(first.fromCache, false);
  assert.ok(first.expiresOn > new Date());
  const { claims } = verifyJwt(first.accessToken);
  assert.equal(claims.tid, tenant);
  assert.equal(claims.appid, clientId);
  assert.equal(claims.idtyp, "app");
  assert.equal(claims.aud, base);
  const who = await whoAmI(first.accessToken);
  assert.match(who.UserId, GUID);

  const second = await cca.acquireTokenByClientCredential(request);
  assert.equal(second.fromCache, true);
  assert.equal(second.accessToken, first.accessToken);

  const wrong = new msal.ConfidentialClientApplication({
    auth: { clientId, clientSecret: "not-the-secret", authority, knownAuthorities },
  });
  await assert.rejects(wrong.acquireTokenByClientCredential(request), (e) => {
    assert.equal(e.errorCode, "invalid_client");
    assert.match(e.errorMessage, /AADSTS7000215/);
    return true;
  });
});

test("ConfidentialClientApplication: certificate credentials, PS256 with x5t#S256 and RS256 with x5t", async () => {
  // The key and certificate the emulator registered to clientId (run-msal.sh: EMULATOR_CLIENT_CERTIFICATE).
  const pem = require("node:fs").readFileSync(env("EMULATOR_CLIENT_CERTIFICATE"), "utf8");
  const certificate = new crypto.X509Certificate(pem.slice(pem.indexOf("-----BEGIN CERTIFICATE-----")));
  const privateKey = pem.slice(0, pem.indexOf("-----BEGIN CERTIFICATE-----"));
  const hex = (fingerprint) => fingerprint.replaceAll(":", "");
  for (const clientCertificate of [
    { thumbprintSha256: hex(certificate.fingerprint256), privateKey },
    { thumbprint: hex(certificate.fingerprint), privateKey },
  ]) {
    const cca = new msal.ConfidentialClientApplication({
      auth: { clientId, clientCertificate, authority, knownAuthorities },
    });
    const request = { scopes: [`${base}/.default`] };
    const first = await cca.acquireTokenByClientCredential(request);
    assert.equal(first.fromCache, false);
    const { claims } = verifyJwt(first.accessToken);
    assert.equal(claims.appid, clientId);
    assert.equal(claims.idtyp, "app");
    assert.match((await whoAmI(first.accessToken)).UserId, GUID);
    // MSAL sends the assertion it signed again (skipping its token cache): Entra takes it.
    const again = await cca.acquireTokenByClientCredential({ ...request, skipCache: true });
    assert.equal(again.fromCache, false);
  }

  // Another key under the registered certificate's thumbprint: the signature does not verify.
  const { privateKey: otherKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const forged = new msal.ConfidentialClientApplication({
    auth: {
      clientId,
      clientCertificate: {
        thumbprintSha256: hex(certificate.fingerprint256),
        privateKey: otherKey.export({ type: "pkcs8", format: "pem" }),
      },
      authority,
      knownAuthorities,
    },
  });
  await assert.rejects(forged.acquireTokenByClientCredential({ scopes: [`${base}/.default`] }), (e) => {
    assert.equal(e.errorCode, "invalid_client");
    assert.match(e.errorMessage, /AADSTS700027/);
    return true;
  });
});

test("PublicClientApplication: username and password, an account keyed on client_info", async () => {
  const pca = publicClient();
  const result = await pca.acquireTokenByUsernamePassword({
    scopes: [resourceScope],
    username,
    password,
  });
  assert.equal(result.fromCache, false);
  assert.equal(result.account.username, username);
  assert.equal(result.account.tenantId, tenant);
  const claims = assertIdToken(result.idToken, publicClientId);
  // client_info: homeAccountId is uid.utid.
  assert.equal(result.account.homeAccountId, `${claims.oid}.${tenant}`);
  assert.equal(result.account.localAccountId, claims.oid);
  assert.equal(result.uniqueId, claims.oid);
  const access = verifyJwt(result.accessToken).claims;
  assert.equal(access.scp, "user_impersonation");
  assert.equal(access.oid, claims.oid);
  await whoAmI(result.accessToken);

  // The silent call finds the token in the cache.
  const [account] = await pca.getTokenCache().getAllAccounts();
  assert.equal(account.homeAccountId, result.account.homeAccountId);
  const silent = await pca.acquireTokenSilent({ account, scopes: [resourceScope] });
  assert.equal(silent.fromCache, true);
  assert.equal(silent.accessToken, result.accessToken);

  await assert.rejects(
    publicClient().acquireTokenByUsernamePassword({ scopes: [resourceScope], username, password: "wrong" }),
    (e) => {
      assert.equal(e.errorCode, "invalid_grant");
      assert.match(e.errorMessage, /AADSTS50126/);
      return true;
    },
  );
});

test("auth code with PKCE: getAuthCodeUrl, the emulator's redirect, acquireTokenByCode with the verifier and nonce", async () => {
  const pca = publicClient();
  const { verifier, challenge } = await new msal.CryptoProvider().generatePkceCodes();
  const state = crypto.randomUUID();
  const nonce = crypto.randomUUID();
  const url = await pca.getAuthCodeUrl({
    scopes: [resourceScope],
    redirectUri,
    codeChallenge: challenge,
    codeChallengeMethod: "S256",
    state,
    nonce,
    loginHint: username,
  });
  assert.ok(url.startsWith(config.authorization_endpoint), url);

  const res = await fetch(url, { redirect: "manual" });
  assert.equal(res.status, 302);
  const location = new URL(res.headers.get("location"));
  assert.equal(`${location.origin}${location.pathname}`, redirectUri);
  assert.equal(location.searchParams.get("state"), state);
  const code = location.searchParams.get("code");
  assert.ok(code);

  // MSAL checks the nonce in the id token against the one sent (nonce_mismatch otherwise)
  // and the state against the redirect's.
  const result = await pca.acquireTokenByCode(
    { code, scopes: [resourceScope], redirectUri, codeVerifier: verifier, state, nonce },
    { code, state },
  );
  assert.equal(result.fromCache, false);
  assert.equal(result.account.username, username);
  assert.equal(result.idTokenClaims.nonce, nonce);
  const claims = assertIdToken(result.idToken, publicClientId, nonce);
  assert.equal(result.account.homeAccountId, `${claims.oid}.${tenant}`);
  await whoAmI(result.accessToken);

  // A redeemed code is single use.
  await assert.rejects(
    publicClient().acquireTokenByCode({ code, scopes: [resourceScope], redirectUri, codeVerifier: verifier }),
    (e) => /AADSTS54005/.test(e.errorMessage),
  );
  // A wrong verifier is refused.
  const again = new URL(
    (
      await fetch(
        await pca.getAuthCodeUrl({
          scopes: [resourceScope],
          redirectUri,
          codeChallenge: challenge,
          codeChallengeMethod: "S256",
        }),
        { redirect: "manual" },
      )
    ).headers.get("location"),
  );
  await assert.rejects(
    publicClient().acquireTokenByCode({
      code: again.searchParams.get("code"),
      scopes: [resourceScope],
      redirectUri,
      codeVerifier: (await new msal.CryptoProvider().generatePkceCodes()).verifier,
    }),
    (e) => /AADSTS501481/.test(e.errorMessage),
  );
});

/** Signs in with auth code + PKCE and returns the client and its account. */
async function signedIn() {
  const pca = publicClient();
  const { verifier, challenge } = await new msal.CryptoProvider().generatePkceCodes();
  const url = await pca.getAuthCodeUrl({
    scopes: [resourceScope],
    redirectUri,
    codeChallenge: challenge,
    codeChallengeMethod: "S256",
  });
  const location = new URL((await fetch(url, { redirect: "manual" })).headers.get("location"));
  const result = await pca.acquireTokenByCode({
    code: location.searchParams.get("code"),
    scopes: [resourceScope],
    redirectUri,
    codeVerifier: verifier,
  });
  return { pca, result };
}

test("refresh: acquireTokenSilent after the access token expired, forceRefresh, and a refresh token used twice", async () => {
  const { pca, result } = await signedIn();
  const account = result.account;

  // The cached token, as MSAL keeps it, with its expiry moved into the past: the next silent
  // call must redeem the cached refresh token.
  const cache = JSON.parse(pca.getTokenCache().serialize());
  const refreshTokens = Object.values(cache.RefreshToken);
  assert.equal(refreshTokens.length, 1, "MSAL cached a refresh token");
  const past = String(Math.floor(Date.now() / 1000) - 60);
  for (const at of Object.values(cache.AccessToken)) {
    at.expires_on = past;
    at.extended_expires_on = past;
  }
  pca.getTokenCache().deserialize(JSON.stringify(cache));
  const afterExpiry = await pca.acquireTokenSilent({ account, scopes: [resourceScope] });
  assert.equal(afterExpiry.fromCache, false);
  assert.notEqual(afterExpiry.accessToken, result.accessToken);
  assert.ok(afterExpiry.expiresOn > new Date());
  assertIdToken(afterExpiry.idToken, publicClientId);
  await whoAmI(afterExpiry.accessToken);

  const forced = await pca.acquireTokenSilent({ account, scopes: [resourceScope], forceRefresh: true });
  assert.equal(forced.fromCache, false);
  assert.notEqual(forced.accessToken, afterExpiry.accessToken);

  // The emulator answered each refresh with a fresh refresh token; the first one still works
  // (Entra does not revoke a used refresh token).
  const firstRefreshToken = refreshTokens[0].secret;
  const latest = Object.values(JSON.parse(pca.getTokenCache().serialize()).RefreshToken)[0].secret;
  assert.notEqual(latest, firstRefreshToken);
  for (let i = 0; i < 2; i++) {
    const other = publicClient();
    const r = await other.acquireTokenByRefreshToken({ refreshToken: firstRefreshToken, scopes: [resourceScope] });
    assert.ok(r.accessToken);
    assert.equal(r.account.homeAccountId, account.homeAccountId);
    await whoAmI(r.accessToken);
  }
});

test("a silent token from the cache of a client that signed in with auth code", async () => {
  const { pca, result } = await signedIn();
  const accounts = await pca.getTokenCache().getAllAccounts();
  assert.equal(accounts.length, 1);
  const silent = await pca.acquireTokenSilent({ account: accounts[0], scopes: [resourceScope] });
  assert.equal(silent.fromCache, true);
  assert.equal(silent.accessToken, result.accessToken);
  assert.equal(silent.idToken, result.idToken);
  // The cache survives serialization, as a persisted cache does.
  const restored = publicClient();
  restored.getTokenCache().deserialize(pca.getTokenCache().serialize());
  const [account] = await restored.getTokenCache().getAllAccounts();
  const fromRestored = await restored.acquireTokenSilent({ account, scopes: [resourceScope] });
  assert.equal(fromRestored.fromCache, true);
  assert.equal(fromRestored.accessToken, result.accessToken);
});
