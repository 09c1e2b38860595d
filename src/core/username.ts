// Usernames: 3 to 64 letters, digits and ._@+- ; two are the same when their NFKC lowercase keys are.
import { LatchError } from './errors.ts';

const ALLOWED = /^[\p{L}\p{M}\p{Nd}._@+-]+$/u;

/** The comparison key stored in its own unique column. */
export const usernameKey = (username: string): string => username.normalize('NFKC').toLowerCase();

/** Validates a username for registration; returns it unchanged (as the user wrote it). */
export function validateUsername(username: string): string {
  const length = [...username].length;
  if (length < 3 || length > 64) throw new LatchError('invalid_request', { detail: 'username must be 3 to 64 characters' });
  if (!ALLOWED.test(username) || !ALLOWED.test(usernameKey(username))) {
    throw new LatchError('invalid_request', { detail: 'username may only contain letters, digits and . _ @ + -' });
  }
  return username;
}

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

/** Passwords are used exactly as given: no trimming, no normalisation, no truncation. */
export function validatePassword(password: string, field = 'password'): string {
  const length = [...password].length;
  if (length < PASSWORD_MIN || length > PASSWORD_MAX) {
    throw new LatchError('invalid_request', { detail: `${field} must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters` });
  }
  return password;
}
