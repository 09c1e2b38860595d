// The demo UI served at /: log in or sign up, see your sessions, log out of one device or
// all of them. Plain DOM and the latch/client SDK in cookie mode; no framework, no CDN.
import { createClient, LatchClientError, type AuthState, type Session } from '../src/client/index.ts';

const client = createClient({ baseUrl: '' });
const main = document.getElementById('app') as HTMLElement;
const accountBar = document.getElementById('account-bar') as HTMLElement;
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

type Attr = string | number | boolean | ((event: Event) => void);
type Child = Node | string | null | undefined | false;

/** createElement with attributes, listeners (on…) and children; text is never parsed as HTML. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, '');
    else if (value !== false) el.setAttribute(name, String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) el.append(child);
  return el;
}

const seconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

/** A name for this browser in the sessions list, e.g. "Chrome on Linux". */
function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'A browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : 'an unknown system';
  return `${browser} on ${os}`;
}

// ---- errors in plain words ---------------------------------------------------------------

let retryTicker: number | undefined;

/** Shows an error; a "try again in N s" counts down by itself. */
function showError(target: HTMLElement, err: unknown, context: 'login' | 'signup' | 'password' | 'other'): void {
  window.clearInterval(retryTicker);
  const e = err instanceof LatchClientError ? err : null;
  const wait = e?.retryAfter ?? null;
  const say = (text: string): void => void target.replaceChildren(text);
  if (e && (e.code === 'too_many_attempts' || e.code === 'overloaded' || e.code === 'rate_limited') && wait !== null) {
    const until = Date.now() + wait * 1000;
    const lead = e.code === 'too_many_attempts' ? 'Too many attempts.' : 'The server is busy.';
    const tick = (): void => {
      const left = seconds(until - Date.now());
      say(left > 0 ? `${lead} Try again in ${left} s.` : `${lead} You can try again now.`);
      if (left === 0) window.clearInterval(retryTicker);
    };
    tick();
    retryTicker = window.setInterval(tick, 1000);
    return;
  }
  say(plainWords(e, context));
}

function plainWords(e: LatchClientError | null, context: 'login' | 'signup' | 'password' | 'other'): string {
  switch (e?.code) {
    case 'invalid_credentials':
      return context === 'password' ? 'The current password is wrong.' : 'Wrong username or password.';
    case 'account_locked':
      return e.lockedUntil
        ? `This account is locked until ${dateTime.format(new Date(e.lockedUntil))}. Ask an administrator if you did not expect this.`
        : 'This account is locked. Ask an administrator.';
    case 'username_taken':
      return 'That username is taken. Choose another one, or log in if it is yours.';
    case 'signup_closed':
      return 'Sign-up is closed on this server. Ask an administrator for an account.';
    case 'invalid_request':
      if (context === 'signup') return 'Usernames are 3 to 64 letters, digits or . _ @ + -, and passwords need at least 8 characters.';
      if (context === 'password') return 'The new password must be 8 to 1024 characters.';
      return 'The request was not accepted. Please check what you entered.';
    case 'network_error':
      return 'The server could not be reached. Check your connection and try again.';
    case 'origin_not_allowed':
      return 'This page is not allowed to use your session. Open Latch from its own address.';
    case 'invalid_token':
    case 'invalid_grant':
    case 'refresh_token_reused':
      return 'Your session ended elsewhere. Please log in again.';
    case 'not_found':
      return context === 'password' ? 'Changing the password is not available on this server.' : 'That no longer exists.';
    case undefined:
      return 'Something went wrong. Please try again.';
    default:
      return (e?.status ?? 0) >= 500 ? 'The server is having trouble. Please try again in a moment.' : 'That did not work. Please try again.';
  }
}

function noticeFor(state: AuthState): string | null {
  switch (state.reason) {
    case 'logout':
      return state.logoutPending
        ? 'You are logged out on this device, but the server could not be reached to end the session. It will be told the next time this page opens while you are online.'
        : 'You have logged out.';
    case 'other_tab':
      return 'You logged out in another tab.';
    case 'session_ended':
      return 'Your session ended elsewhere (logged out from another device, or by an administrator). Please log in again.';
    default:
      return null;
  }
}

async function busy<T>(button: HTMLButtonElement | HTMLButtonElement[], task: () => Promise<T>): Promise<T> {
  const buttons = Array.isArray(button) ? button : [button];
  for (const b of buttons) b.disabled = true;
  try {
    return await task();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// ---- logged out: one form, two ways in ----------------------------------------------------

function renderLoggedOut(state: AuthState, problem?: unknown): void {
  accountBar.replaceChildren();
  const notice = noticeFor(state);
  const error = h('p', { class: 'error', role: 'alert', id: 'auth-error' });
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true, maxlength: 64 });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024, 'aria-describedby': 'password-hint' });
  const logIn = h('button', { type: 'submit', class: 'primary', value: 'login' }, 'Log in');
  const create = h('button', { type: 'submit', class: 'secondary', value: 'signup' }, 'Create account');
  const form = h(
    'form',
    {
      class: 'stack',
      'aria-labelledby': 'auth-title',
      onsubmit: (event) => {
        event.preventDefault();
        const signup = (event as SubmitEvent).submitter === create;
        error.replaceChildren();
        void busy([logIn, create], async () => {
          try {
            if (signup) await client.register({ username: username.value, password: password.value });
            await client.login({ username: username.value, password: password.value, device: deviceName() });
          } catch (err) {
            showError(error, err, signup ? 'signup' : 'login');
            password.select();
          }
        });
      },
    },
    h('label', { for: 'username' }, 'Username'),
    username,
    h('label', { for: 'password' }, 'Password'),
    password,
    h('p', { class: 'hint', id: 'password-hint' }, 'New accounts need a password of at least 8 characters.'),
    error,
    h('div', { class: 'actions' }, logIn, create),
  );
  main.replaceChildren(
    h(
      'section',
      { class: 'card narrow' },
      h('h1', { id: 'auth-title', tabindex: -1 }, 'Log in or create an account'),
      notice && h('p', { class: state.logoutPending || state.reason === 'session_ended' ? 'notice warn' : 'notice', role: 'status' }, notice),
      form,
    ),
  );
  if (problem) showError(error, problem, 'other');
  username.focus();
}

// ---- logged in: the account page -----------------------------------------------------------

interface AccountView {
  countdown: HTMLElement;
  status: HTMLElement;
  tbody: HTMLTableSectionElement;
}

let account: AccountView | null = null;

function renderAccount(state: AuthState): void {
  const name = state.user?.username ?? '…';
  const logOut = h('button', { type: 'button', class: 'primary', id: 'logout' }, 'Log out');
  logOut.addEventListener('click', () => void busy(logOut, () => client.logout()));
  accountBar.replaceChildren(h('span', { class: 'who' }, 'Signed in as ', h('strong', {}, name)), logOut);

  const status = h('p', { class: 'notice', role: 'status' });
  const countdown = h('span', { role: 'timer', 'aria-live': 'off' });
  const refreshNow = h('button', { type: 'button', class: 'link' }, 'Refresh now');
  refreshNow.addEventListener('click', () =>
    void busy(refreshNow, async () => {
      status.replaceChildren();
      await client.refresh().catch((err: unknown) => showError(status, err, 'other'));
    }),
  );

  const tbody = h('tbody');
  const reload = h('button', { type: 'button', class: 'link' }, 'Reload list');
  reload.addEventListener('click', () => void busy(reload, loadSessions));
  const everywhere = h('button', { type: 'button', class: 'danger' }, 'Log out everywhere');
  everywhere.addEventListener('click', () => void busy(everywhere, () => client.logout({ scope: 'all' })));

  main.replaceChildren(
    h('h1', { tabindex: -1, class: 'page-title' }, 'Your account: ', h('span', { class: 'username' }, name)),
    status,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'session-title' },
      h('h2', { id: 'session-title' }, 'This session'),
      h('p', {}, 'Your access token is kept in this page’s memory only, and renewed silently shortly before it expires.'),
      h('p', { class: 'countdown' }, countdown, ' ', refreshNow),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'sessions-title' },
      h('div', { class: 'row' }, h('h2', { id: 'sessions-title' }, 'Sessions'), reload),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('caption', { class: 'visually-hidden' }, 'Devices where you are logged in'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['Device', 'IP address', 'User agent', 'Created', 'Last seen'].map((label) => h('th', { scope: 'col' }, label)),
              h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
            ),
          ),
          tbody,
        ),
      ),
      h('div', { class: 'row end' }, h('p', { class: 'hint' }, 'Ends every session of this account, on every device, this one included.'), everywhere),
    ),
    passwordSection(status),
  );
  account = { countdown, status, tbody };
  tickCountdown();
  void loadSessions();
}

function tickCountdown(): void {
  const state = client.state;
  if (!account || state.status !== 'logged_in' || state.nextRefreshAt === null) return;
  const left = seconds(state.nextRefreshAt - Date.now());
  const valid = state.expiresAt === null ? 0 : seconds(state.expiresAt - Date.now());
  const text =
    state.reason === 'refresh_failed'
      ? `The last refresh failed (the server could not be reached); trying again in ${left} s.`
      : `Next silent refresh in ${left} s (the current token is valid for ${valid} s more).`;
  if (account.countdown.textContent !== text) account.countdown.textContent = text;
}

async function loadSessions(): Promise<void> {
  const view = account;
  if (!view) return;
  let sessions: Session[];
  try {
    sessions = await client.sessions();
  } catch (err) {
    if (client.state.status === 'logged_in') showError(view.status, err, 'other');
    return;
  }
  if (view !== account) return;
  view.tbody.replaceChildren(...sessions.map((s) => sessionRow(s, view)));
}

function sessionRow(s: Session, view: AccountView): HTMLTableRowElement {
  const revoke = h('button', { type: 'button', class: 'small', 'aria-describedby': `device-${s.id}` }, 'Revoke');
  revoke.addEventListener('click', () =>
    void busy(revoke, async () => {
      try {
        if (s.current) {
          await client.logout();
          return;
        }
        await client.revokeSession(s.id);
        view.status.replaceChildren(`Session ended: ${s.device ?? 'unnamed device'}, last seen ${dateTime.format(new Date(s.lastSeenAt))}.`);
        await loadSessions();
      } catch (err) {
        showError(view.status, err, 'other');
      }
    }),
  );
  const when = (iso: string): HTMLTimeElement => h('time', { datetime: iso }, dateTime.format(new Date(iso)));
  return h(
    'tr',
    { class: s.current ? 'current' : '', 'data-session': s.id },
    h('td', { id: `device-${s.id}` }, s.device ?? 'Unnamed device', s.current && h('span', { class: 'badge' }, 'This browser')),
    h('td', { class: 'mono' }, s.ip ?? '—'),
    h('td', { class: 'ua', title: s.userAgent ?? '' }, s.userAgent ?? '—'),
    h('td', {}, when(s.createdAt)),
    h('td', {}, when(s.lastSeenAt)),
    h('td', {}, revoke),
  );
}

function passwordSection(status: HTMLElement): HTMLElement {
  const note = h('p', { class: 'error', role: 'alert' });
  const current = h('input', { id: 'current-password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  const next = h('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 1024 });
  const submit = h('button', { type: 'submit', class: 'secondary' }, 'Change password');
  const fields = h(
    'fieldset',
    {},
    h('legend', { class: 'visually-hidden' }, 'Change password'),
    // lets password managers tell which account the new password belongs to
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: client.state.user?.username ?? '', hidden: true, readonly: true, tabindex: -1 }),
    h('label', { for: 'current-password' }, 'Current password'),
    current,
    h('label', { for: 'new-password' }, 'New password'),
    next,
    h('p', { class: 'hint' }, 'At least 8 characters. Every other session of this account ends; this one stays.'),
    note,
    h('div', { class: 'actions' }, submit),
  );
  const unavailable = (): void => {
    fields.disabled = true;
    note.className = 'notice';
    note.replaceChildren('Changing the password is not available on this server yet.');
  };
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: (event) => {
        event.preventDefault();
        note.replaceChildren();
        void busy(submit, async () => {
          try {
            await client.changePassword({ currentPassword: current.value, newPassword: next.value });
            current.value = next.value = '';
            status.replaceChildren('Your password has been changed, and your other sessions were logged out.');
            await loadSessions();
          } catch (err) {
            // an older server without the endpoint: say so instead of pretending
            if (err instanceof LatchClientError && err.code === 'not_found') unavailable();
            else showError(note, err, 'password');
          }
        });
      },
    },
    fields,
  );
  void passwordSupported().then((yes) => {
    if (!yes) unavailable();
  });
  return h('section', { class: 'card', 'aria-labelledby': 'password-title' }, h('h2', { id: 'password-title' }, 'Change password'), form);
}

let passwordProbe: Promise<boolean> | null = null;

/** The server's own OpenAPI document says whether POST /v1/password exists. */
function passwordSupported(): Promise<boolean> {
  passwordProbe ??= fetch('/openapi.json')
    .then((res) => (res.ok ? (res.json() as Promise<{ paths?: Record<string, { post?: unknown }> }>) : null))
    .then((doc) => (doc ? Boolean(doc.paths?.['/v1/password']?.post) : true))
    // unknown: leave the form usable, a 404 on submit still disables it
    .catch(() => true);
  return passwordProbe;
}

// ---- wiring ---------------------------------------------------------------------------------

let shown: 'in' | 'out' | null = null;
let shownNotice: string | null = null;

function render(state: AuthState, problem?: unknown): void {
  const view = state.status === 'logged_in' ? 'in' : state.status === 'logged_out' ? 'out' : null;
  if (view === null) return;
  // a resumed session is shown once its user is known ('restored' follows)
  if (view === 'in' && shown !== 'in' && state.user === null && state.reason === 'refreshed') return;
  if (view !== shown || (view === 'out' && (noticeFor(state) !== shownNotice || problem !== undefined))) {
    shown = view;
    if (view === 'in') {
      renderAccount(state);
      main.querySelector<HTMLElement>('h1')?.focus();
    } else {
      account = null;
      shownNotice = noticeFor(state);
      renderLoggedOut(state, problem);
    }
    return;
  }
  if (view === 'in') {
    tickCountdown();
    // a refresh updates "last seen"; a restored session may have changed user
    if (state.reason === 'refreshed' || state.reason === 'restored' || state.reason === 'login') {
      if (state.reason !== 'refreshed') renderAccount(state);
      else void loadSessions();
    }
  }
}

client.onChange((state) => render(state));
window.setInterval(tickCountdown, 1000);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && account) void loadSessions();
});

client.resume().then(
  (state) => render(state),
  (err: unknown) => {
    // logged in but the user could not be loaded: still show the account, it will fill in
    if (client.state.status === 'logged_in') {
      shown = 'in';
      renderAccount(client.state);
    } else render({ ...client.state, status: 'logged_out' }, err);
  },
);
