// Resource-server credentials (`latch clients add`): a random id and a 256-bit secret that is
// shown once and stored only as its SHA-256, checked in constant time.
import type { AuditInput, ClientRecord, Store } from '../store/port.ts';
import type { Clock } from './clock.ts';
import { LatchError } from './errors.ts';
import { randomId, randomSecret, safeEqual, sha256 } from './secrets.ts';

/** A name an operator can type and a log can show: letters, digits and `._-`, 1 to 64 characters. */
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Longer ids or secrets are not ours; refusing them early keeps hashing bounded. */
export const MAX_CLIENT_ID = 128;
export const MAX_CLIENT_SECRET = 256;

/**
 * Compared against when the id is unknown, so an unknown id costs the same hash and comparison
 * as a wrong secret.
 */
const NO_CLIENT_HASH = sha256('latch/no-such-client');

export interface NewClientCredential {
  id: string;
  name: string;
  /** the only time the secret exists outside the caller's hands */
  secret: string;
  createdAt: number;
}

export type AddClientResult = { kind: 'created'; credential: NewClientCredential } | { kind: 'name_taken' };

export function validateClientName(name: string): string {
  if (!CLIENT_NAME.test(name)) {
    throw new LatchError('invalid_request', { detail: 'a client name is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit' });
  }
  return name;
}

export class ClientRegistry {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  private audit(type: 'client.added' | 'client.removed', detail: Record<string, unknown>): AuditInput {
    return { type, at: this.clock.now(), actor: null, subject: null, ip: null, userAgent: null, detail };
  }

  async add(name: string): Promise<AddClientResult> {
    validateClientName(name);
    const secret = randomSecret();
    const record: ClientRecord = { id: randomId(), name, secretHash: sha256(secret), createdAt: this.clock.now() };
    const created = await this.store.createClient(record, this.audit('client.added', { name, client_id: record.id }));
    if (!created) return { kind: 'name_taken' };
    return { kind: 'created', credential: { id: record.id, name, secret, createdAt: record.createdAt } };
  }

  async list(): Promise<ClientRecord[]> {
    return this.store.listClients();
  }

  /** false when no client has that name */
  async remove(name: string): Promise<boolean> {
    return this.store.removeClient(name, this.audit('client.removed', { name }));
  }

  /** The client whose id and secret these are, or null. The same work whether the id exists or not. */
  async verify(id: string, secret: string): Promise<ClientRecord | null> {
    if (id.length === 0 || id.length > MAX_CLIENT_ID || secret.length > MAX_CLIENT_SECRET) return null;
    const record = await this.store.findClientById(id);
    const matches = safeEqual(sha256(secret), record?.secretHash ?? NO_CLIENT_HASH);
    return record && matches ? record : null;
  }

  /** Whether a client with this id exists (a bare client_id must not name a confidential client). */
  async exists(id: string): Promise<boolean> {
    if (id.length === 0 || id.length > MAX_CLIENT_ID) return false;
    return (await this.store.findClientById(id)) !== null;
  }
}
