// The key ring: signing keys with states next / active / verify / disabled (DESIGN.md point 7),
// private keys sealed at rest, public keys published as JWKS. Verification only ever looks a
// kid up here; it never follows a jku, x5u, jwk or x5c header.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { KeyState, SigningKeyRecord, Store } from '../store/port.ts';
import type { Clock } from './clock.ts';
import { ConfigError } from './errors.ts';
import type { Sealer } from './seal.ts';

export type SigningAlg = 'ES256' | 'EdDSA' | 'RS256';

export interface PublicJwk extends JsonWebKey {
  kid: string;
  alg: SigningAlg;
  use: 'sig';
}

export interface VerificationKey {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: number;
  /** ms: when it became, or becomes, the signing key */
  activatedAt: number | null;
  /** ms: when it stopped signing */
  retiredAt: number | null;
  publicKey: KeyObject;
  /** node:crypto digest name for crypto.verify (null for EdDSA) */
  digest: string | null;
  /** JOSE signatures are raw r‖s for ECDSA */
  dsaEncoding: 'ieee-p1363' | undefined;
  /** the options object crypto.verify takes, built once per key (the hot path allocates nothing for it) */
  verifyOptions: { key: KeyObject; dsaEncoding: 'ieee-p1363' | undefined };
  jwk: PublicJwk;
}

export interface SigningKey extends VerificationKey {
  privateKey: KeyObject;
}

const ALGS: readonly SigningAlg[] = ['ES256', 'EdDSA', 'RS256'];

function algParams(alg: SigningAlg): { digest: string | null; dsaEncoding: 'ieee-p1363' | undefined } {
  switch (alg) {
    case 'ES256':
      return { digest: 'sha256', dsaEncoding: 'ieee-p1363' };
    case 'RS256':
      return { digest: 'sha256', dsaEncoding: undefined };
    case 'EdDSA':
      return { digest: null, dsaEncoding: undefined };
  }
}

function generate(alg: SigningAlg): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'EdDSA':
      return generateKeyPairSync('ed25519');
    case 'RS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
  }
}

/** RFC 7638 JWK thumbprint: the key id. */
function thumbprint(jwk: JsonWebKey): string {
  const members: Record<string, string[]> = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'], RSA: ['e', 'kty', 'n'] };
  const names = members[jwk.kty ?? ''];
  if (!names) throw new TypeError(`unsupported key type ${jwk.kty}`);
  const canonical = `{${names.map((n) => `"${n}":"${String((jwk as Record<string, unknown>)[n])}"`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

/** Creates a new key pair and its store record (private key sealed). */
export function createSigningKeyRecord(alg: SigningAlg, sealer: Sealer, nowMs: number, state: KeyState): SigningKeyRecord {
  const { publicKey, privateKey } = generate(alg);
  const raw = publicKey.export({ format: 'jwk' });
  const kid = thumbprint(raw);
  const jwk: PublicJwk = { ...raw, kid, alg, use: 'sig' };
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return {
    kid,
    alg,
    state,
    publicJwk: JSON.stringify(jwk),
    sealedPrivateKey: sealer.seal(der, kid),
    createdAt: nowMs,
    activatedAt: state === 'active' ? nowMs : null,
    retiredAt: null,
  };
}

export class KeyRing {
  private byKid = new Map<string, VerificationKey>();
  private active: SigningKey | null = null;
  private next: SigningKey | null = null;
  private listeners: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    private readonly alg: SigningAlg,
    private readonly clock: Clock,
  ) {}

  /**
   * Loads every key from the store and opens the private keys. A master key that cannot open
   * them is a configuration error: the process must not start.
   */
  async load(): Promise<void> {
    const records = await this.store.listSigningKeys();
    const byKid = new Map<string, VerificationKey>();
    let active: SigningKey | null = null;
    let next: SigningKey | null = null;
    for (const r of records) {
      if (!(ALGS as string[]).includes(r.alg)) continue;
      const alg = r.alg as SigningAlg;
      const jwk = JSON.parse(r.publicJwk) as PublicJwk;
      const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
      const params = algParams(alg);
      const key: VerificationKey = {
        kid: r.kid,
        alg,
        state: r.state,
        createdAt: r.createdAt,
        activatedAt: r.activatedAt,
        retiredAt: r.retiredAt,
        publicKey,
        jwk,
        ...params,
        verifyOptions: { key: publicKey, dsaEncoding: params.dsaEncoding },
      };
      byKid.set(r.kid, key);
      if (r.state === 'disabled') continue;
      const der = this.sealer.open(r.sealedPrivateKey, r.kid);
      if (!der) {
        throw new ConfigError(
          `the master key cannot open the stored signing key ${r.kid}: every node on one database needs the same LATCH_MASTER_KEY (or a copy of the same master.key file)`,
        );
      }
      if (r.state === 'active' || r.state === 'next') {
        const signing = { ...key, privateKey: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) };
        if (r.state === 'active') active = signing;
        else if (!next || (signing.activatedAt ?? 0) > (next.activatedAt ?? 0)) next = signing;
      }
    }
    this.byKid = byKid;
    this.active = active;
    this.next = next;
    for (const listener of this.listeners) listener();
  }

  /** On first start: creates the active key (only one process wins), then loads the ring. */
  async ensureActiveKey(): Promise<void> {
    await this.load();
    if (this.active) return;
    await this.store.insertFirstSigningKey(createSigningKeyRecord(this.alg, this.sealer, this.clock.now(), 'active'));
    await this.load();
    if (!this.active) throw new Error('no active signing key after initialisation');
  }

  /** Called whenever the ring changes (so verifiers can drop cached lookups). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * The key to sign with now: the active one, or the next one once its activation time has
   * come (every node switches at that instant, before the store records the promotion).
   */
  signingKey(): SigningKey {
    const next = this.next;
    if (next && next.activatedAt !== null && next.activatedAt <= this.clock.now()) return next;
    if (!this.active) throw new Error('the key ring has no active key');
    return this.active;
  }

  activeKey(): SigningKey | null {
    return this.active;
  }

  nextKey(): SigningKey | null {
    return this.next;
  }

  /** A key that may verify tokens: never a disabled one. */
  verificationKey(kid: string): VerificationKey | undefined {
    const key = this.byKid.get(kid);
    return key && key.state !== 'disabled' ? key : undefined;
  }

  /** Algorithms of the keys in the ring: the only ones a token may use. */
  allowedAlgs(): ReadonlySet<string> {
    return new Set([...this.byKid.values()].filter((k) => k.state !== 'disabled').map((k) => k.alg));
  }

  /** RFC 7517 set of public keys that verifiers may meet: next, active and verify-only. */
  jwks(): { keys: PublicJwk[] } {
    return { keys: [...this.byKid.values()].filter((k) => k.state !== 'disabled').map((k) => k.jwk) };
  }

  list(): VerificationKey[] {
    return [...this.byKid.values()];
  }
}
