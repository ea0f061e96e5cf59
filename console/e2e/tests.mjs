// What an operator does in the console, each checked against what the API
// (and so the customer) sees. Tests run in this order on one database.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { ADMIN, BASE, CUSTOMER, balance, call, login, money, must, newCustomer, send } from './api.mjs';

const SESSION_KEY = 'chainpay.console.session';
const SIDEBAR = [
  ['Overview', 'Overview'],
  ['Users', 'Users'],
  ['KYC', 'KYC'],
  ['Agents', 'Agents'],
  ['Merchants', 'Merchants'],
  ['Treasury', 'Treasury'],
  ['Vouchers', 'Vouchers'],
  ['Transactions', 'Transactions'],
  ['Audit log', 'Audit log'],
  ['Suspicious activity', 'Suspicious activity'],
  ['Reversals', 'Reversals'],
  ['Chain explorer', 'Chain explorer'],
  ['M-Pesa', 'M-Pesa'],
  ['SMS', 'SMS outbox'],
  ['Sanctions', 'Sanctions'],
  ['FX and fees', 'FX and fees'],
  ['Ledger', 'Ledger'],
  ['Reconciliation', 'Reconciliation'],
];

/** Figures for README, written to figures.json by the runner. */
export const figures = { first_load: null, page_render_ms: {} };

async function signIn(page, who = ADMIN) {
  await page.goto(`${BASE}/console/`);
  await page.getByLabel('Phone', { exact: true }).fill(who.phone);
  await page.getByLabel('PIN', { exact: true }).fill(who.pin);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function signedIn(page) {
  await signIn(page);
  await page.locator('nav.sidebar').waitFor();
}

/** Waits until the page titled `title` shows its data (nothing loading). */
async function rendered(page, title) {
  await page.waitForFunction(
    (want) => document.querySelector('main h1')?.textContent.startsWith(want) && !document.querySelector('main .loading'),
    title,
  );
}

/** Opens a page from the sidebar; returns how long it took to show its data. */
async function open(page, label, title = label) {
  const started = Date.now();
  await page.locator('nav.sidebar').getByRole('link', { name: label, exact: true }).click();
  await rendered(page, title);
  return Date.now() - started;
}

async function openDemoUser(page) {
  await open(page, 'Users');
  await page.getByLabel('Phone or name').fill('Demo User');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: 'Demo User', exact: true }).click();
  await rendered(page, 'Demo User');
}

async function firstLoad(page) {
  const requests = [];
  page.on('requestfinished', (request) => requests.push(request));
  const started = Date.now();
  const index = await page.goto(`${BASE}/console/`);
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  const ms = Date.now() - started;
  const headers = index.headers();
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.match(headers['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval'/);
  const files = {};
  let transferred = 0;
  for (const request of requests) {
    const sizes = await request.sizes();
    const response = await request.response();
    transferred += sizes.responseBodySize + sizes.responseHeadersSize;
    files[new URL(request.url()).pathname] = {
      bytes: sizes.responseBodySize,
      encoding: response.headers()['content-encoding'] ?? 'identity',
      type: response.headers()['content-type'],
    };
  }
  assert.equal(files['/console/console_bg.wasm']?.type, 'application/wasm');
  assert.notEqual(files['/console/console_bg.wasm']?.encoding, 'identity', 'the wasm travels compressed');
  figures.first_load = { transferred_bytes: transferred, ms, files };
  assert.ok(transferred < 1_000_000, `first load is ${transferred} bytes`);
}

async function overview(page) {
  await signedIn(page);
  await rendered(page, 'Overview');
  assert.ok(Number(await page.locator('#users-count').textContent()) >= 2);
  assert.equal(await page.locator('#ledger-balanced').textContent(), 'Yes');
  assert.equal(await page.locator('#audit-valid').textContent(), 'Yes');
}

async function customerRefused(page) {
  await signIn(page, CUSTOMER);
  await page.getByRole('alert').filter({ hasText: 'is not an operator' }).waitFor();
  assert.equal(await page.locator('nav.sidebar').count(), 0);
  const wrong = await call('POST', '/auth/login', { body: { phone: ADMIN.phone, pin: '9999' } });
  assert.equal(wrong.status, 401);
}

async function sessionEnds(page) {
  await signedIn(page);
  const token = await page.evaluate((key) => JSON.parse(sessionStorage.getItem(key)).token, SESSION_KEY);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.equal((await call('GET', '/admin/overview', { token })).status, 401, 'sign-out ends the token');

  // Every token of this admin ends elsewhere: the next call gets 401.
  await signedIn(page);
  await must(204, 'POST', '/auth/logout-all', { token: await login(ADMIN) });
  await page.locator('nav.sidebar').getByRole('link', { name: 'Users', exact: true }).click();
  await page.getByText('Your session ended. Sign in again.').waitFor();

  // A session whose token has expired ends on reload.
  await signedIn(page);
  await page.evaluate((key) => {
    const session = JSON.parse(sessionStorage.getItem(key));
    sessionStorage.setItem(key, JSON.stringify({ ...session, expires_at_ms: Date.now() - 1000 }));
  }, SESSION_KEY);
  await page.reload();
  await page.getByText('Your session expired. Sign in again.').waitFor();
}

async function everyPage(page) {
  await signedIn(page);
  await rendered(page, 'Overview');
  for (const [label, title] of SIDEBAR.slice(1).concat([SIDEBAR[0]])) {
    figures.page_render_ms[label] = await open(page, label, title);
    await page.screenshot({ path: `${process.env.SCREENSHOTS ?? '.'}/page-${label.toLowerCase().replaceAll(' ', '-')}.png`, fullPage: true });
  }
  const slow = Object.entries(figures.page_render_ms).filter(([, ms]) => ms >= 1000);
  assert.deepEqual(slow, [], 'every page shows its data within a second');
}

async function suspendAndUnsuspend(page) {
  const token = await login(CUSTOMER);
  assert.equal((await call('GET', '/wallet/balances', { token })).status, 200);
  await signedIn(page);
  await openDemoUser(page);
  assert.equal(await page.locator('#user-status').textContent(), 'Active');
  await page.locator('#suspend').click();
  await page.locator('#user-status', { hasText: 'Suspended' }).waitFor();
  assert.equal((await call('GET', '/wallet/balances', { token })).status, 401, 'a suspended customer’s token stops');
  const refused = await call('POST', '/auth/login', { body: CUSTOMER });
  assert.equal(refused.body.code, 'account_suspended');
  await page.locator('#suspend', { hasText: 'Unsuspend' }).click();
  await page.locator('#user-status', { hasText: 'Active' }).waitFor();
  const fresh = await login(CUSTOMER);
  assert.equal((await call('GET', '/wallet/balances', { token: fresh })).status, 200, 'after unsuspension the customer signs in again');
  assert.equal((await call('GET', '/wallet/balances', { token })).status, 401, 'the suspension ended the old token for good');
}

async function reversalApproved(page) {
  const payee = await newCustomer('+254711200001', 'Wrong Number');
  const customer = await login(CUSTOMER);
  const tx = await send(customer, payee.phone, 500);
  const before = await balance(customer, 'USD');
  const reason = 'Sent to the wrong number';
  const request = await must(201, 'POST', '/reversal/request', { token: customer, body: { tx_id: tx.tx_id, reason } });

  await signedIn(page);
  await open(page, 'Reversals');
  const card = page.locator(`article[data-reversal="${request.reversal_id}"]`);
  await card.getByText(reason).waitFor();
  await card.getByLabel('Note').fill('Payee confirmed by phone that the money is not theirs.');
  await card.getByRole('button', { name: 'Approve' }).click();
  // One approval moves nothing: a second admin's books it.
  await card.getByText("A second admin's approval books it.").waitFor();
  assert.equal(await balance(customer, 'USD'), before, 'one approval moves nothing');
  const approve = `/admin/reversals/${request.reversal_id}/approve`;
  await must(200, 'POST', approve, { token: await secondAdmin(), body: { note: 'Call log checked.' } });
  await page.reload();
  await page.getByRole('button', { name: 'APPROVED' }).click();
  await card.locator('.badge', { hasText: 'APPROVED' }).waitFor();

  const after = await balance(customer, 'USD');
  assert.equal(after, before + 500, 'the customer has the amount back');
  assert.equal(await balance(payee.token, 'USD'), 0);
  await openDemoUser(page);
  const usd = page.locator('table tr', { has: page.locator('td', { hasText: /^USD$/ }) }).first();
  assert.equal(await usd.locator('td').nth(1).textContent(), money('USD', after));
}

async function fourEyes(page) {
  const admin = await login(ADMIN);
  const tx = await send(admin, CUSTOMER.phone, 100);
  const request = await must(201, 'POST', '/reversal/request', { token: admin, body: { tx_id: tx.tx_id, reason: 'My own test payment' } });
  await signedIn(page);
  await open(page, 'Reversals');
  const card = page.locator(`article[data-reversal="${request.reversal_id}"]`);
  await card.getByLabel('Note').fill('Approving my own request');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByRole('alert').filter({ hasText: 'another admin must decide this' }).waitFor();
  const pending = await must(200, 'GET', '/admin/reversals?status=PENDING', { token: admin });
  assert.ok(pending.reversals.some((r) => r.reversal_id === request.reversal_id), 'the request is still pending');
}

async function structuringReviewed(page) {
  const customer = await login(CUSTOMER);
  const sent = [];
  for (let i = 0; i < 3; i += 1) sent.push(await send(customer, ADMIN.phone, 95_000));
  await signedIn(page);
  await open(page, 'Suspicious activity');
  const row = page.locator('table.sars tr', { hasText: 'structuring' }).filter({ hasText: CUSTOMER.phone });
  await row.getByRole('link').click();
  await rendered(page, 'SAR');
  assert.match(await page.locator('main h1').textContent(), /structuring/);
  await page.getByRole('link', { name: sent[2].tx_id.slice(0, 8) }).waitFor();
  const sarId = page.url().split('/').pop();
  await page.getByLabel('Note').fill('Three payments just under USD 1,000 in a day; asked for the source of funds.');
  await page.locator('#review-sar').click();
  await page.getByText('Review saved.').waitFor();
  await page.locator('ol.history li', { hasText: 'OPEN → UNDER_REVIEW' }).waitFor();
  const sar = await must(200, 'GET', `/admin/sars/${sarId}`, { token: await login(ADMIN) });
  assert.equal(sar.status, 'UNDER_REVIEW');
}

async function proofInBrowser(page) {
  await signedIn(page);
  await open(page, 'Chain explorer');
  await page.locator('#mine').click();
  await page.getByText('Sealed.').waitFor();
  await page.locator('table.blocks tbody tr').first().getByRole('link').click();
  await rendered(page, 'Block #');
  await page.getByRole('link', { name: /verify$/ }).first().click();
  const verdict = page.locator('#proof-verdict');
  await verdict.filter({ hasText: 'Verified: every step holds.' }).waitFor();
  assert.equal(await page.locator('ol.steps li.fail').count(), 0);
  const leaf = await page.locator('#leaf').inputValue();
  await page.locator('#leaf').fill(leaf.replace(/\d/, (d) => String((Number(d) + 1) % 10)));
  await page.locator('#verify-proof').click();
  await verdict.filter({ hasText: 'Not verified' }).waitFor();
  assert.ok((await page.locator('ol.steps li.fail').count()) >= 1);
}

async function ledgerCheck(page) {
  await signedIn(page);
  await open(page, 'Ledger');
  await page.locator('#run-ledger-check').click();
  await page.locator('#ledger-verdict', { hasText: /^Balanced:/ }).waitFor();
}

async function auditLog(page) {
  await signedIn(page);
  await open(page, 'Audit log');
  await page.locator('#verify-audit').click();
  await page.locator('#audit-verdict', { hasText: /^Valid:/ }).waitFor();
  await page.getByLabel('Action').fill('admin.suspend');
  await page.getByRole('button', { name: 'Filter' }).click();
  // The unfiltered page may still be showing (it has admin.suspend rows too):
  // wait for the filtered one.
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('main table tbody tr td:nth-child(3)')];
    return cells.length >= 1 && cells.every((cell) => cell.textContent === 'admin.suspend');
  });
  const actions = await page.locator('main table tbody tr td:nth-child(3)').allTextContents();
  assert.ok(actions.length >= 1 && actions.every((a) => a === 'admin.suspend'), actions.join());
}

async function transactionLookup(page) {
  const tx = await send(await login(CUSTOMER), ADMIN.phone, 250);
  await signedIn(page);
  await open(page, 'Transactions');
  await page.getByLabel('Transaction id').fill(tx.tx_id);
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await rendered(page, 'Transaction');
  await page.getByText(tx.tx_id, { exact: true }).waitFor();
  await page.getByText(money('USD', 250), { exact: true }).first().waitFor();
  await page.getByText(tx.signature).waitFor();
  await open(page, 'Transactions');
  await page.getByLabel('Phone', { exact: true }).fill(CUSTOMER.phone);
  await page.getByRole('button', { name: 'Their transactions' }).click();
  await rendered(page, 'Demo User');
  await page.getByRole('link', { name: tx.tx_id.slice(0, 8) }).waitFor();
}

async function channels(page) {
  const customer = await login(CUSTOMER);
  const deposit = await must(202, 'POST', '/wallet/deposit', { token: customer, body: { amount: 10_000, currency: 'KES', method: 'mpesa' } });
  const deadline = Date.now() + 20_000;
  let status = deposit.status;
  while (status !== 'CONFIRMED' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = (await must(200, 'GET', `/mpesa/status/${deposit.ref}`, { token: customer })).status;
  }
  assert.equal(status, 'CONFIRMED', 'the simulated customer accepts the prompt');
  await signedIn(page);
  await open(page, 'M-Pesa');
  await page.getByLabel('Status').selectOption('CONFIRMED');
  const row = page.locator('table.deposits tr', { hasText: deposit.ref.slice(0, 8) });
  await row.locator('.badge', { hasText: 'CONFIRMED' }).waitFor();
  await open(page, 'SMS', 'SMS outbox');
  await page.getByLabel('To phone').fill(CUSTOMER.phone);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('main table tbody tr', { hasText: 'KES 100.00' }).first().waitFor();
}

/** Runs `sql` on the gateway's embedded database (a fixture: what only time would do); its rows. */
function onDatabase(sql) {
  const socket = join(process.env.CHAINPAY_DATA_DIR, 'pg');
  return execFileSync('psql', ['-h', socket, '-U', 'chainpay', '-d', 'chainpay', '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { encoding: 'utf8' });
}

async function payoutSettledByHand(page) {
  const admin = await login(ADMIN);
  const customer = await login(CUSTOMER);
  const before = await balance(customer, 'KES');
  // Safaricom never receives the request: the payout stays held.
  await simFaults(admin, 'lose_request');
  let held;
  try {
    held = await must(202, 'POST', '/wallet/withdraw', { token: customer, body: { amount: 12_300, currency: 'KES', method: 'mpesa' } });
    // The request goes out after the answer: keep the fault until it has.
    const deadline = Date.now() + 10_000;
    const unconfirmed = async () => (await must(200, 'GET', '/admin/mpesa-transactions?status=PENDING', { token: admin }))
      .withdrawals.some((w) => w.hold_tx_id === held.tx_id && w.result_desc?.startsWith('submission unconfirmed'));
    while (!(await unconfirmed())) {
      assert.ok(Date.now() < deadline, 'the B2C request was sent and lost');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await simFaults(admin, null);
  }
  // As if an hour had passed and Transaction Status had been asked.
  const aged = onDatabase(`UPDATE mpesa_withdrawals SET submitted_at = now() - interval '2 hours', created_at = now() - interval '2 hours',
              status_queries = greatest(status_queries, 1) WHERE hold_tx_id = '${held.tx_id}' RETURNING ref`);
  assert.equal(aged.trim().split('\n').length, 1, aged);

  await signedIn(page);
  await open(page, 'M-Pesa');
  await page.getByLabel('Status').selectOption('PENDING');
  const row = page.locator('table.withdrawals tr', { hasText: 'KES 123.00' });
  await row.getByRole('button', { name: 'Settle by hand' }).click();
  await page.getByLabel('M-Pesa shows it').selectOption('NOT_PAID');
  await page.getByLabel('Statement note').fill('Not on the M-Pesa statement of today');
  await page.locator('#propose-payout').click();
  await page.getByText('Proposed; another admin must approve it.').waitFor();
  const card = page.locator('article.request', { hasText: 'Not on the M-Pesa statement of today' });
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByRole('alert').filter({ hasText: 'another admin must decide this' }).waitFor();
  assert.equal(await balance(customer, 'KES'), before - 12_300 - held.fee, 'nothing moves on one admin\'s word');

  const { resolutions } = await must(200, 'GET', '/admin/mpesa/resolutions?status=PENDING', { token: admin });
  const proposal = resolutions.find((r) => r.proposal_note === 'Not on the M-Pesa statement of today');
  await must(200, 'POST', `/admin/mpesa/resolutions/${proposal.id}/approve`, { token: await secondAdmin(), body: { note: 'seen' } });
  await page.locator('section.resolutions').getByRole('button', { name: 'APPROVED' }).click();
  await page.locator('article.request', { hasText: 'Not on the M-Pesa statement of today' }).getByText('Booked as').waitFor();
  assert.equal(await balance(customer, 'KES'), before, 'amount and fee returned');
}

/** Posts a B2C result for payout `reference` (Safaricom's id `conversation`) to the gateway, as Daraja does. */
async function b2cResult(reference, conversation, code, receipt = '') {
  const token = process.env.MPESA_CALLBACK_TOKEN;
  assert.ok(token, 'MPESA_CALLBACK_TOKEN is given to the tests');
  const body = { Result: { ResultType: 0, ResultCode: code, ResultDesc: code === 0 ? 'ok' : 'The initiator information is invalid.',
    OriginatorConversationID: reference, ConversationID: conversation, TransactionID: receipt } };
  const response = await fetch(`${BASE}/api/v1/mpesa/b2c/result?token=${token}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.text());
}

async function payoutContradicted(page) {
  const admin = await login(ADMIN);
  const customer = await login(CUSTOMER);
  const before = await balance(customer, 'KES');
  const held = await must(202, 'POST', '/wallet/withdraw', { token: customer, body: { amount: 15_600, currency: 'KES', method: 'mpesa' } });
  // Safaricom has the request: keep it from paying on its own, as if slow.
  const reference = onDatabase(`SELECT ref FROM mpesa_withdrawals WHERE hold_tx_id = '${held.tx_id}'`).trim();
  const deadline = Date.now() + 10_000;
  let conversation = '';
  while (!conversation) {
    assert.ok(Date.now() < deadline, 'the B2C request reached the simulator');
    conversation = onDatabase(`UPDATE sim_daraja_b2c SET settle_at = now() + interval '1 hour'
      WHERE originator_conversation_id = '${reference}' AND status = 'PENDING' RETURNING conversation_id`).trim();
  }
  // M-Pesa reports it failed (the customer gets it back), then pays it.
  await b2cResult(reference, conversation, 2001);
  assert.equal(await balance(customer, 'KES'), before, 'refunded');
  const paid = await fetch(`${BASE}/sim/daraja/b2c/${conversation}`, {
    method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ result_code: 0 }),
  });
  assert.equal(paid.status, 200, await paid.text());
  const owed = 15_600 + held.fee;
  const reserved = async () => (await must(200, 'GET', '/wallet/balances', { token: customer })).wallets.find((w) => w.currency === 'KES').locked;
  const until = Date.now() + 10_000;
  while ((await reserved()) !== owed) {
    assert.ok(Date.now() < until, 'amount and fee reserved once M-Pesa reports it paid');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  await signedIn(page);
  await open(page, 'M-Pesa');
  const found = page.locator('article.contradiction', { hasText: 'PAID AFTER REFUND' });
  await found.getByText('the customer has it twice').waitFor();
  await found.getByLabel('Statement note').fill('Paid on the M-Pesa statement of today');
  await found.getByRole('button', { name: 'Propose: take amount and fee back from the customer' }).click();
  await page.getByText('A correction is waiting for a second admin.').waitFor();
  const card = page.locator('article.request', { hasText: 'Paid on the M-Pesa statement of today' });
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByRole('alert').filter({ hasText: 'another admin must decide this' }).waitFor();
  assert.equal(await balance(customer, 'KES'), before, 'nothing moves on one admin\'s word');

  const { corrections } = await must(200, 'GET', '/admin/mpesa/corrections?status=PENDING', { token: admin });
  const proposal = corrections.find((c) => c.proposal_note === 'Paid on the M-Pesa statement of today');
  await must(200, 'POST', `/admin/mpesa/corrections/${proposal.id}/approve`, { token: await secondAdmin(), body: { note: 'seen' } });
  await page.locator('section.corrections').getByRole('button', { name: 'APPROVED' }).click();
  await page.locator('article.request', { hasText: 'Paid on the M-Pesa statement of today' }).getByText('Booked as').waitFor();
  assert.equal(await balance(customer, 'KES'), before - owed, 'amount and fee taken back');
  assert.equal(await reserved(), 0, 'and no longer reserved');
  await page.reload();
  await page.getByText('No contradictions.').waitFor();
}

/** Sets the Daraja simulator's B2C fault (`null`: none). */
async function simFaults(token, b2c) {
  const response = await fetch(`${BASE}/sim/daraja/faults`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ b2c }),
  });
  assert.equal(response.status, 200, await response.text());
}

async function sanctionsAndFx(page) {
  await signedIn(page);
  await open(page, 'Sanctions');
  await page.getByLabel('Name', { exact: true }).fill('Ivan Testovich Listed');
  await page.getByRole('button', { name: 'Add to the list' }).click();
  await page.getByText('Added; every customer is screened again.').waitFor();
  await page.locator('table.sanctions tr', { hasText: 'Ivan Testovich Listed' }).waitFor();
  // A rate one admin sets waits for a second admin to set the same value.
  await open(page, 'FX and fees');
  await page.getByLabel('Currency').fill('KES');
  await page.getByLabel('Units per US dollar').fill('131.250');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByText('Proposed: a second admin must set the same value.').waitFor();
  await page.locator('table.rate-proposals tr', { hasText: 'KES' }).filter({ hasText: '131.25' }).waitFor();
  await page.locator('table.rates tr', { hasText: 'KES' }).filter({ hasText: '129.5' }).waitFor();
  const second = await secondAdmin();
  await must(200, 'PUT', '/admin/fx/rates', { token: second, body: { rates: [{ currency: 'KES', usd_mid: '131.25' }] } });
  await page.reload();
  await page.locator('table.rates tr', { hasText: 'KES' }).filter({ hasText: '131.25' }).waitFor();
  assert.equal(await page.locator('table.rate-proposals').count(), 0);
  await page.locator('table.fees tbody tr').first().waitFor();

  // The second admin in the console: a spread another admin proposed is in
  // force once they set the same.
  await must(202, 'PUT', '/admin/fx/rates', { token: second, body: { spread: '0.016' } });
  await page.reload();
  await page.locator('table.rate-proposals tr', { hasText: 'spread' }).waitFor();
  await page.getByLabel('Currency').fill('');
  await page.getByLabel('Units per US dollar').fill('');
  await page.getByLabel('Spread').fill('0.016');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByText('Saved.').waitFor();
  await page.getByText('Spread 0.016 (each conversion applies half)').waitFor();
}

/** A second admin, made as operators make admins: on the server, by the CLI. */
async function secondAdmin() {
  const phone = '+254711900001';
  const registered = await call('POST', '/auth/register', { body: { phone, name: 'Second Operator', pin: '5831' } });
  if (registered.status === 201) {
    const admin = await login(ADMIN);
    await must(200, 'POST', `/admin/users/${registered.body.user_id}/kyc`, { token: admin, body: { status: 'VERIFIED' } });
    execFileSync(process.env.CHAINPAY_BIN, ['promote', phone], { env: { ...process.env, RUST_LOG: 'error' } });
  }
  return login({ phone, pin: '5831' });
}

async function agentsAndTreasury(page) {
  const agentPhone = '+254711900002';
  const agent = await newCustomer(agentPhone, 'Mary Wanjiru');
  const admin = await login(ADMIN);
  const { user_id: agentId } = (await must(200, 'GET', `/admin/users?q=${encodeURIComponent(agentPhone)}`, { token: admin })).users[0];
  await must(200, 'POST', `/admin/users/${agentId}/kyc`, { token: admin, body: { status: 'VERIFIED' } });

  await signedIn(page);
  await open(page, 'Agents');
  await page.getByLabel('Customer phone').fill(agentPhone);
  await page.locator('#appoint-agent').click();
  await page.getByText('Appointed.').waitFor();
  const row = page.locator('table.agents tr', { hasText: 'Mary Wanjiru' });
  await row.getByText('none').waitFor();

  await open(page, 'Treasury');
  await page.getByLabel('Agent phone').fill(agentPhone);
  await page.getByLabel('Amount').fill('100000');
  await page.getByLabel('Currency').fill('KES');
  await page.getByLabel('Bank reference').fill('EQUITY-20261201-0042');
  await page.getByLabel('Proposal note').fill('Bank statement line 42');
  await page.locator('#propose-issuance').click();
  await page.getByText('Proposed; another admin must approve it.').waitFor();
  const card = page.locator('article.request', { hasText: 'EQUITY-20261201-0042' });
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByRole('alert').filter({ hasText: 'another admin must decide this' }).waitFor();

  const pending = await must(200, 'GET', '/admin/treasury/issuances?status=PENDING', { token: admin });
  const issuance = pending.issuances.find((i) => i.reference === 'EQUITY-20261201-0042');
  await must(200, 'POST', `/admin/treasury/issuances/${issuance.id}/approve`, { token: await secondAdmin(), body: { note: 'seen' } });
  await open(page, 'Agents');
  await page.locator('table.agents tr', { hasText: 'Mary Wanjiru' }).getByText(money('KES', 10_000_000)).waitFor();

  const cashIn = await must(201, 'POST', '/agent/cash-in', { token: agent.token, body: { customer_phone: CUSTOMER.phone, amount: 100_000, currency: 'KES' } });
  await open(page, 'Transactions');
  await page.getByLabel('Transaction id').fill(cashIn.tx_id);
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await rendered(page, 'Transaction');
  await page.getByText('cash_in', { exact: true }).waitFor();
}

async function vouchersVerified(page) {
  const customer = await login(CUSTOMER);
  const voucher = await must(201, 'POST', '/vouchers', { token: customer, body: { amount: 25_000, currency: 'KES' } });
  await signedIn(page);
  await open(page, 'Vouchers');
  const row = page.locator('table.vouchers tr', { hasText: voucher.code.slice(12) });
  await row.getByRole('button', { name: 'Check signature' }).click();
  assert.equal(await page.locator('#signed-voucher').inputValue(), voucher.signed);
  assert.ok(!(await page.content()).includes(voucher.code), 'the console never shows a code');
  await page.locator('#verify-voucher').click();
  await page.locator('#voucher-verdict', { hasText: `Genuine: voucher` }).filter({ hasText: 'KES 250.00' }).waitFor();
  await page.locator('#signed-voucher').fill(voucher.signed.replace('.25000.', '.95000.'));
  await page.locator('#verify-voucher').click();
  await page.locator('#voucher-verdict', { hasText: 'Not genuine: the signature does not match' }).waitFor();
}

async function kycReview(page) {
  const customer = await newCustomer('+254711900003', 'Achieng Odhiambo');
  await must(201, 'POST', '/kyc/documents', { token: customer.token, body: { document_type: 'national_id', document_number: '27345678' } });
  await signedIn(page);
  await open(page, 'KYC');
  const row = page.locator('table.kyc tr', { hasText: 'Achieng Odhiambo' });
  await row.getByText('*****678').waitFor();
  assert.ok(!(await page.content()).includes('27345678'), 'the number is never shown');
  await row.getByRole('link', { name: 'Achieng Odhiambo' }).click();
  await rendered(page, 'Achieng Odhiambo');
  await page.locator('section.actions select').first().selectOption('VERIFIED');
  await page.getByLabel('Note', { exact: true }).fill('ID seen at the Kisumu branch');
  await page.getByRole('button', { name: 'Set KYC status' }).click();
  // The page reloads the user with the decision.
  await page.locator('table.documents .badge', { hasText: 'VERIFIED' }).waitFor();
  await page.getByLabel('Note (how they were verified)').fill('called back on the registered number');
  await page.locator('#pin-reset').click();
  await page.getByText('Code sent; they set a new PIN through USSD My account, Forgot PIN.').waitFor();
}

async function merchantsRegistered(page) {
  const owner = await newCustomer('+254711900007', 'Wanjiru Njeri');
  const admin = await login(ADMIN);
  const ownerId = (await must(200, 'GET', `/admin/users?q=${encodeURIComponent('+254711900007')}`, { token: admin })).users[0].user_id;
  await must(200, 'POST', `/admin/users/${ownerId}/kyc`, { token: admin, body: { status: 'VERIFIED' } });
  await signedIn(page);
  await open(page, 'Merchants');
  await page.getByLabel('Business name').fill('Njeri Tailors');
  await page.getByLabel('Owner phone').fill('+254711900007');
  await page.locator('#register-merchant').click();
  const row = page.locator('table.merchants tr', { hasText: 'Njeri Tailors' });
  await row.waitFor();
  const number = (await row.locator('td').first().textContent()).trim();
  assert.match(number, /^\d{6}$/);
  // A customer pays the till over the API; the console shows the balance.
  await must(201, 'POST', '/wallet/pay', { token: (await login(CUSTOMER)), body: { till: number, amount: 50000, currency: 'KES' } });
  await page.reload();
  await rendered(page, 'Merchants');
  await page.locator('table.merchants tr', { hasText: 'Njeri Tailors' }).getByText('KES 495.00').waitFor();
  // The business's own page: the payment, and a key the owner made, by prefix.
  const key = await must(201, 'POST', '/merchant/api-keys', { token: owner.token, body: { name: 'till app', scopes: ['payments:read'] } });
  await page.getByRole('link', { name: 'Njeri Tailors', exact: true }).click();
  await rendered(page, 'Njeri Tailors');
  await page.locator('table.payments tr', { hasText: 'KES 500.00' }).getByText('KES 5.00').waitFor();
  await page.locator('table.keys tr', { hasText: `cpk_${key.prefix}_` }).getByText('till app').waitFor();
  await page.getByText('No webhook endpoints.').waitFor();
  assert.equal(await page.locator('table.keys').getByText(key.key).count(), 0, 'the secret is never shown');
  await page.goBack();
  await rendered(page, 'Merchants');
  await page.locator('table.merchants tr', { hasText: 'Njeri Tailors' }).getByRole('button', { name: 'Suspend' }).click();
  await page.locator('table.merchants tr', { hasText: 'Njeri Tailors' }).getByText('SUSPENDED').waitFor();
  assert.ok(owner.token);
}

async function apiExplorer(page) {
  await page.goto(`${BASE}/docs`);
  // Swagger UI, served from the binary, lists the merchant API and takes a token.
  await page.locator('.opblock-summary-path', { hasText: '/api/v1/merchant/payment-requests' }).first().waitFor();
  await page.getByRole('button', { name: /Authorize/ }).first().click();
  const dialog = page.locator('.modal-ux');
  await dialog.locator('input').first().fill(await login(CUSTOMER));
  // Swagger UI labels its buttons for screen readers ("Apply credentials").
  await dialog.locator('button.modal-btn.authorize').click();
  await dialog.locator('button', { hasText: 'Logout' }).waitFor();
  await dialog.locator('button.btn-done').click();
  const balances = page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: /^\/api\/v1\/wallet\/balances$/ }) });
  await balances.locator('.opblock-summary').click();
  // Try it out is on from the start: Execute is there at once.
  await balances.getByRole('button', { name: 'Execute' }).click();
  await balances.locator('.response-col_status', { hasText: '200' }).first().waitFor();
  await balances.locator('.response-col_description', { hasText: 'wallets' }).first().waitFor();
}

async function reconciliation(page) {
  await signedIn(page);
  await open(page, 'Reconciliation');
  await page.locator('#run-reconciliation').click();
  const verdict = page.locator('#reconciliation-verdict').first();
  await verdict.waitFor({ timeout: 20000 });
  const text = await verdict.textContent();
  const items = await page.locator('div.run tr.item').allTextContents();
  assert.match(text, /^Run #\d+: clean\.$/, `${text} ${items.join(' | ')}`);
  await page.locator('div.run ul.checks li', { hasText: 'mpesa_float' }).waitFor();
  // The run is stored and listed.
  const id = text.match(/#(\d+)/)[1];
  await page.locator('table.runs button', { hasText: `#${id}` }).waitFor();
}

export const tests = [
  ['first-load', 'the sign-in page loads compressed, under 1 MB, with a strict CSP', firstLoad],
  ['overview', 'the demo admin signs in and sees the overview', overview],
  ['customer-refused', 'a customer is refused with a clear message', customerRefused],
  ['session-ends', 'the session ends on sign-out, on a 401 and on expiry', sessionEnds],
  ['suspend', 'suspending the demo user stops their token; unsuspending lets them sign in', suspendAndUnsuspend],
  ['reversal', 'a reversal a customer asked for is approved and their balance changes', reversalApproved],
  ['four-eyes', 'an admin cannot approve a reversal they asked for, and the console says why', fourEyes],
  ['sar', 'a structuring report is reviewed with a note', structuringReviewed],
  ['proof', 'a proof verifies in the browser and fails for a tampered leaf', proofInBrowser],
  ['ledger', 'the ledger check runs and the ledger is balanced', ledgerCheck],
  ['audit', 'the audit log verifies and filters by action', auditLog],
  ['transactions', 'a transaction is found by id and by phone', transactionLookup],
  ['channels', 'M-Pesa deposits filter by status and the SMS outbox by phone', channels],
  ['sanctions-fx', 'a sanctions entry is added and a rate is set', sanctionsAndFx],
  ['kyc', 'a submitted document is reviewed (masked) and a PIN reset code sent', kycReview],
  ['agents-treasury', 'an agent is appointed and float issued only by a second admin', agentsAndTreasury],
  ['vouchers', 'a voucher’s signed form verifies in the browser and fails when altered', vouchersVerified],
  ['merchants', 'a till is registered, paid by a customer and suspended from the console', merchantsRegistered],
  ['payout-by-hand', 'a payout M-Pesa never answered for is settled as not paid only by a second admin', payoutSettledByHand],
  ['payout-contradicted', 'a refunded payout M-Pesa paid after all is taken back only by a second admin', payoutContradicted],
  ['reconciliation', 'all checks run from the console and the books reconcile with M-Pesa', reconciliation],
  ['api-explorer', '/docs lists every route and tries one out with a bearer token', apiExplorer],
  ['every-page', 'every page renders its data within a second', everyPage],
].map(([slug, name, run], n) => ({ slug: `${String(n + 1).padStart(2, '0')}-${slug}`, name, run }));
