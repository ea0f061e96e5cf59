// The REST API as a customer's app calls it: what the browser tests set up
// and check behind the console's back.

import { randomUUID } from 'node:crypto';

export const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
export const ADMIN = { phone: '+254700000000', pin: '1234' };
export const CUSTOMER = { phone: '+254700000001', pin: '1234' };

/** Calls `/api/v1{path}`; returns `{ status, body }` (body parsed when JSON). */
export async function call(method, path, { token, body } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method === 'POST') headers['idempotency-key'] = randomUUID();
  const response = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, body: parsed };
}

/** Like `call`, failing unless the status is `expected`. */
export async function must(expected, method, path, options) {
  const answer = await call(method, path, options);
  if (answer.status !== expected) {
    throw new Error(`${method} ${path}: expected ${expected}, got ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

export async function login({ phone, pin }) {
  return (await must(200, 'POST', '/auth/login', { body: { phone, pin } })).access_token;
}

/** A new customer with a strong PIN; returns their phone and token. */
export async function newCustomer(phone, name) {
  await must(201, 'POST', '/auth/register', { body: { phone, name, pin: '5831' } });
  return { phone, token: await login({ phone, pin: '5831' }) };
}

export async function send(token, toPhone, amount, currency = 'USD') {
  return must(201, 'POST', '/wallet/send', { token, body: { to_phone: toPhone, amount, currency } });
}

export async function balance(token, currency) {
  const { wallets } = await must(200, 'GET', '/wallet/balances', { token });
  return wallets.find((w) => w.currency === currency).balance;
}

/** `USD 9,995.00`, as the console shows money with two minor digits. */
export function money(currency, minor) {
  const whole = Math.trunc(Math.abs(minor) / 100).toLocaleString('en-US');
  const cents = String(Math.abs(minor) % 100).padStart(2, '0');
  return `${currency} ${minor < 0 ? '-' : ''}${whole}.${cents}`;
}
