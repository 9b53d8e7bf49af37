#!/usr/bin/env node
// Cordon end to end in Microsoft 365 Agents Playground, driven by headless
// Chromium: an analyst asks for a containment in a channel, the approval
// card reaches the approvals channel, the analyst's own approval is
// refused, another user approves, and the card updates in place until the
// account is contained. Every stage is asserted; screenshots of the stages
// go to docs/screenshots/. README.md beside this file explains the use.
//
// The script starts `cordon sandbox` (unless --attach) and the Playground,
// and stops both when it ends, whatever happens. It builds nothing: run
// `cargo build --release` first.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const E2E_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(E2E_DIR, '..');

// What the sandbox's simulated tenant and .m365agentsplayground.yml hold.
const ANALYST = 'Sam Lee';
const APPROVER = 'Oscar Ruiz';
const BOT_NAME = 'Cordon';
const TARGET_UPN = 'alice@contoso.com';
const TARGET_NAME = 'Alice Bennett';
const INCIDENT = 'INC0010001';
const JUSTIFICATION = 'token theft suspected';
const COMMAND = `contain ${TARGET_UPN} ${INCIDENT} ${JUSTIFICATION}`;
const SANDBOX_API_TOKEN = 'sandbox-api-token';

// The flags the browser runs with; Playwright adds --headless and a fresh
// temporary --user-data-dir of its own to every launch.
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const USAGE = `Usage: npm run e2e -- [options]   (or: node playground.mjs [options])

  --bot-port N          port of the bot on 127.0.0.1 (default 3978; env CORDON_E2E_BOT_PORT)
  --playground-port N   port of the Playground (default 56150; env CORDON_E2E_PLAYGROUND_PORT)
  --attach              use a \`cordon sandbox\` already running on the bot port
                        instead of starting one (it must not hold a request for
                        ${TARGET_UPN} ${INCIDENT} yet)
  --cordon PATH         the cordon binary (default ../target/release/cordon; env CORDON_BIN)
  --chromium PATH       the browser (default /usr/bin/chromium; env CHROMIUM_PATH)
  --screenshots DIR     where the stage screenshots go (default ../docs/screenshots;
                        env CORDON_E2E_SCREENSHOTS)
  --timeout SECONDS     budget for the whole run (default 180; env CORDON_E2E_TIMEOUT)
  --keep-logs           keep the logs directory even when the run passes
  --verbose             print the activities the Playground shows, as they arrive
  -h, --help            this text`;

// ---------------------------------------------------------------- options

function parseOptions(argv, env) {
  const options = {
    botPort: Number(env.CORDON_E2E_BOT_PORT || 3978),
    playgroundPort: Number(env.CORDON_E2E_PLAYGROUND_PORT || 56150),
    attach: false,
    cordon: env.CORDON_BIN || path.join(REPO, 'target', 'release', 'cordon'),
    chromium: env.CHROMIUM_PATH || '/usr/bin/chromium',
    screenshots: env.CORDON_E2E_SCREENSHOTS || path.join(REPO, 'docs', 'screenshots'),
    timeoutSeconds: Number(env.CORDON_E2E_TIMEOUT || 180),
    keepLogs: false,
    verbose: false,
  };
  const args = [...argv];
  const value = (flag) => {
    const next = args.shift();
    if (next === undefined) throw new UsageError(`${flag} needs a value`);
    return next;
  };
  while (args.length > 0) {
    const flag = args.shift();
    switch (flag) {
      case '--bot-port': options.botPort = Number(value(flag)); break;
      case '--playground-port': options.playgroundPort = Number(value(flag)); break;
      case '--attach': options.attach = true; break;
      case '--cordon': options.cordon = path.resolve(value(flag)); break;
      case '--chromium': options.chromium = value(flag); break;
      case '--screenshots': options.screenshots = path.resolve(value(flag)); break;
      case '--timeout': options.timeoutSeconds = Number(value(flag)); break;
      case '--keep-logs': options.keepLogs = true; break;
      case '--verbose': options.verbose = true; break;
      case '-h': case '--help': options.help = true; break;
      default: throw new UsageError(`unknown option ${flag}`);
    }
  }
  for (const [name, port] of [['--bot-port', options.botPort], ['--playground-port', options.playgroundPort]]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UsageError(`${name} must be a port number, not ${port}`);
    }
  }
  if (!(options.timeoutSeconds > 0)) throw new UsageError('--timeout must be a positive number of seconds');
  return options;
}

class UsageError extends Error {}

/** A stage that did not end as it should; its message is the report. */
class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

// ---------------------------------------------------------------- output

const started = Date.now();
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const say = (line) => console.log(line);

let currentStage = 'starting';

async function stage(title, body) {
  currentStage = title;
  const at = Date.now();
  const result = await body();
  say(`  ok  ${title} (${seconds(Date.now() - at)})`);
  return result;
}

// ---------------------------------------------------------------- processes

/** Child processes started by this run; each one leads its own process group. */
const children = new Map();

/** The browser while it runs, so that an interrupted run closes it too. */
let openBrowser = null;

function startChild(name, command, args, { cwd, env, logFile }) {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(command, args, {
    cwd,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', log],
  });
  child.stdout.on('data', (chunk) => fs.appendFileSync(logFile, chunk));
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('error', () => {});
  children.set(name, child);
  return child;
}

/** Resolves with the first match of `pattern` in the child's stdout. */
function waitForOutput(child, name, pattern, timeoutMs) {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      done();
      reject(new CheckFailed(`${name} did not print ${pattern} within ${seconds(timeoutMs)}`));
    }, timeoutMs);
    const onData = (chunk) => {
      text += chunk;
      const match = text.match(pattern);
      if (match) {
        done();
        resolve(match);
      }
    };
    const onExit = (code, signal) => {
      done();
      reject(new CheckFailed(`${name} exited (${signal || `code ${code}`}) before it was ready`));
    };
    const done = () => {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Interrupts every child (the sandbox stops on SIGINT), then kills what is left. */
async function stopChildren() {
  const running = [...children.entries()].filter(([, child]) => child.exitCode === null && child.signalCode === null);
  for (const [, child] of running) signalGroup(child, 'SIGINT');
  const graceful = Promise.all(running.map(([, child]) => child.exited));
  if ((await Promise.race([graceful, delay(5000, 'timeout')])) === 'timeout') {
    for (const [, child] of running) signalGroup(child, 'SIGKILL');
    await Promise.race([graceful, delay(2000)]);
  }
  children.clear();
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function portInUse(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.on('connect', () => { socket.destroy(); resolve(true); });
    socket.on('timeout', () => { socket.destroy(); resolve(false); });
    socket.on('error', () => resolve(false));
  });
}

async function waitForHttp(url, name, timeoutMs, { exited } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (exited?.()) throw new CheckFailed(`${name} exited before it answered ${url}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return response;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = error.cause?.code || error.message;
    }
    await sleep(200);
  }
  throw new CheckFailed(`${name} did not answer ${url} within ${seconds(timeoutMs)} (last: ${last})`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A timer that does not keep the process alive once everything else is done. */
const delay = (ms, value) => new Promise((resolve) => setTimeout(resolve, ms, value).unref());

function tail(file, lines = 25) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------- the bot and the Playground

async function startSandbox(options, logs) {
  check(fs.existsSync(options.cordon),
    `no cordon binary at ${options.cordon}; build it first: cargo build --release`);
  check(!(await portInUse(options.botPort)),
    `127.0.0.1:${options.botPort} is already in use (another \`cordon sandbox\`?); ` +
    'stop it, pass --attach to use it, or pass --bot-port');
  const logFile = path.join(logs, 'sandbox.log');
  const child = startChild('sandbox', options.cordon, ['sandbox', '--bind', `127.0.0.1:${options.botPort}`], {
    cwd: logs,
    env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
    logFile,
  });
  const [, channel] = await waitForOutput(child, 'cordon sandbox', /approvals channel\s+(\S+)/, 30_000)
    .catch((error) => { throw new CheckFailed(`${error.message}\n--- ${logFile}\n${tail(logFile)}`); });
  await waitForHttp(`http://127.0.0.1:${options.botPort}/healthz`, 'cordon sandbox', 30_000,
    { exited: () => child.exitCode !== null });
  return { approvalsChannel: channel };
}

async function attachToSandbox(options) {
  await waitForHttp(`http://127.0.0.1:${options.botPort}/healthz`, 'the running sandbox', 5_000);
  const existing = await botApi(options, `/api/v1/containments?upn=${TARGET_UPN}&incident=${INCIDENT}`);
  check((existing.items || []).length === 0,
    `the running sandbox already holds a request for ${TARGET_UPN} ${INCIDENT}; ` +
    'restart it (its store is temporary) or let the script start its own');
  return { approvalsChannel: null };
}

async function botApi(options, route) {
  const url = `http://127.0.0.1:${options.botPort}${route}`;
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${SANDBOX_API_TOKEN}` },
    signal: AbortSignal.timeout(5000),
  });
  check(response.ok, `GET ${route} answered HTTP ${response.status}; is the bot on port ${options.botPort} a \`cordon sandbox\`?`);
  return response.json();
}

async function startPlayground(options, logs, sandbox) {
  const cli = path.join(E2E_DIR, 'node_modules', '@microsoft', 'm365agentsplayground', 'cli.js');
  check(fs.existsSync(cli), `the Playground is not installed; run \`npm ci\` in ${E2E_DIR}`);
  const config = path.join(REPO, '.m365agentsplayground.yml');
  check(fs.existsSync(config), `${config} is missing`);
  const endpoint = `http://127.0.0.1:${options.botPort}/api/messages`;
  const args = ['-e', endpoint, '-c', 'msteams', '-p', String(options.playgroundPort), '--dt'];
  const logFile = path.join(logs, 'playground.log');
  // It runs in the logs directory (it writes devTools/ there) and reads the
  // repository's configuration; without TEAMSAPPTESTER_BROWSER=none it tries
  // to open a browser and exits.
  const child = startChild('playground', process.execPath, [cli, ...args], {
    cwd: logs,
    env: {
      ...process.env,
      TEAMSAPPTESTER_BROWSER: 'none',
      M365_AGENTS_PLAYGROUND_CONFIG_PATH: config,
    },
    logFile,
  });
  const internalLog = path.join(logs, 'devTools', 'm365agentsplayground.log');
  const [, port] = await waitForOutput(child, 'the Playground', /Listening on (\d+)/, 45_000)
    .catch((error) => { throw new CheckFailed(`${error.message}\n--- ${internalLog}\n${tail(internalLog)}`); });
  if (Number(port) !== options.playgroundPort) {
    say(`  note: port ${options.playgroundPort} was taken; the Playground moved to ${port}`);
  }
  const base = `http://localhost:${port}`;
  const answer = await waitForHttp(`${base}/_internal/v1/config`, 'the Playground', 15_000);
  const { config: shown } = await answer.json();
  checkPlaygroundConfig(shown, sandbox, config);
  const team = shown.teams[0];
  const approvals = team.channels.find((channel) => channel.id !== team.id);
  check(approvals?.name, `the team in ${config} has no channel besides General`);
  return {
    base,
    command: `agentsplayground ${args.join(' ')}`,
    team: team.name,
    approvalsChannel: approvals.name,
    approvalsChannelId: approvals.id,
  };
}

/** The Playground's users and channels must be the sandbox's. */
function checkPlaygroundConfig(config, sandbox, file) {
  check(config?.currentUser?.name === ANALYST,
    `the Playground's current user is ${config?.currentUser?.name}, not ${ANALYST}; ` +
    `did it read ${file}? (see devTools/m365agentsplayground.log in the logs)`);
  check(config.users.some((user) => user.name === APPROVER),
    `${APPROVER} is not among the Playground's users in ${file}`);
  if (sandbox.approvalsChannel) {
    const channels = config.teams.flatMap((team) => team.channels.map((channel) => channel.id));
    check(channels.includes(sandbox.approvalsChannel),
      `the sandbox posts approvals to ${sandbox.approvalsChannel}, which is not a channel in ${file}`);
  }
}

// ---------------------------------------------------------------- the browser

/** A page of the Playground as `user` sees it, plus what it recorded. */
async function openAs(browser, playground, user, logs, options, pages) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    locale: 'en-US',
    timezoneId: 'UTC',
    colorScheme: 'light',
  });
  context.setDefaultTimeout(15_000);
  // Fonts and a worklet come from a CDN that cannot be reached offline;
  // only loopback is let through.
  await context.route((url) => !['localhost', '127.0.0.1'].includes(url.hostname),
    (route) => route.abort('blockedbyclient'));
  if (user !== ANALYST) await actAs(context, user);

  const page = await context.newPage();
  const consoleLog = path.join(logs, `console-${user.split(' ')[0].toLowerCase()}.log`);
  page.on('console', (message) => fs.appendFileSync(consoleLog, `${message.type()}: ${message.text()}\n`));
  page.on('pageerror', (error) => fs.appendFileSync(consoleLog, `pageerror: ${error.message}\n`));
  const activities = [];
  page.on('websocket', (socket) => {
    if (!socket.url().includes('/_ws_conversation/')) return;
    socket.on('framereceived', (frame) => {
      const activity = parseFrame(frame.payload);
      if (!activity) return;
      activities.push(activity);
      if (options.verbose) say(`      [${user}] ${activity.action} ${activity.messageId} ${activity.summary}`);
    });
  });

  const opened = { user, page, context, activities, team: playground.team };
  pages.push(opened);
  await page.goto(playground.base, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  await channelItem(opened, 'General').waitFor({ timeout: 30_000 });
  await page.getByText(user, { exact: true }).first().waitFor({ timeout: 10_000 })
    .catch(() => { throw new CheckFailed(`the Playground page does not show ${user} as the signed-in user`); });
  return opened;
}

/**
 * Makes the Playground's page in `context` act as `user`: the page learns
 * who it is from GET /_internal/v1/config, so its answer is rewritten with
 * `user` as currentUser and the usual current user in their place among the
 * users and the members. The Playground's server checks a click's `from.id`
 * against the conversation's members, which `user` is one of.
 */
async function actAs(context, user) {
  await context.route('**/_internal/v1/config', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    const config = body.config;
    const them = config.users.find((candidate) => candidate.name === user);
    if (!them) {
      // The page stays the usual user's; openAs reports it.
      await route.fulfill({ response });
      return;
    }
    const me = config.currentUser;
    const swap = (ids) => ids.map((id) => (id === them.id ? me.id : id));
    config.users = config.users.map((candidate) => (candidate === them ? me : candidate));
    config.currentUser = them;
    for (const chat of config.groupChats || []) chat.members = swap(chat.members);
    for (const team of config.teams || []) team.members = swap(team.members);
    await route.fulfill({ response, json: body });
  });
}

/** A createMessage or updateMessage the Playground pushed to a page. */
function parseFrame(payload) {
  let frame;
  try {
    frame = JSON.parse(String(payload));
  } catch {
    return null;
  }
  if (!frame.action || !frame.message) return null;
  const card = frame.message.attachments?.find((a) => a.contentType === 'application/vnd.microsoft.card.adaptive')?.content;
  const texts = card ? cardTexts(card) : [];
  return {
    action: frame.action,
    conversationId: frame.actionConversationId,
    messageId: frame.message.messageId,
    text: frame.message.text || '',
    cardTexts: texts,
    summary: card ? `[card] ${texts.slice(0, 2).join(' · ')}` : (frame.message.text || '').slice(0, 100),
  };
}

/** "Containment: Running (2 done)": a card's title and finished steps. */
function cardState(activity) {
  const done = activity.cardTexts.filter((text) => text.startsWith('Done')).length;
  const title = activity.cardTexts[0] || activity.summary;
  return done > 0 && !/Contained/.test(title) ? `${title} (${done} done)` : title;
}

function cardTexts(node, out = []) {
  if (Array.isArray(node)) node.forEach((item) => cardTexts(item, out));
  else if (node && typeof node === 'object') {
    if (node.type === 'TextBlock' && typeof node.text === 'string') out.push(node.text);
    for (const [key, value] of Object.entries(node)) if (key !== 'text') cardTexts(value, out);
  }
  return out;
}

/** A channel of the team in the Playground's conversation tree. */
function channelItem(opened, name) {
  return opened.page.getByRole('treeitem', { name: `${opened.team} - ${name}`, exact: true });
}

/** The one card of the request in the open conversation. */
function requestCard(page, requestId, text) {
  let card = page.locator('.ac-adaptiveCard').filter({ hasText: requestId });
  if (text) card = card.filter({ hasText: text });
  return card.first();
}

async function waitForText(locator, text, what, timeoutMs = 15_000) {
  try {
    await locator.filter({ hasText: text }).first().waitFor({ timeout: timeoutMs });
  } catch {
    const shown = await locator.first().innerText({ timeout: 1000 }).catch(() => '(nothing)');
    throw new CheckFailed(`${what}: "${text}" did not appear within ${seconds(timeoutMs)}; shown:\n${indent(shown)}`);
  }
}

/** Text with every run of white space made one space. */
const flat = (text) => text.replace(/\s+/g, ' ');

const indent = (text) => text.split('\n').filter(Boolean).map((line) => `      ${line}`).join('\n');

/**
 * Saves what `page` shows. With `until`, the viewport is made tall enough
 * for the whole thread and the picture ends just below that element.
 */
async function screenshot(page, dir, name, until) {
  const file = path.join(dir, name);
  const size = page.viewportSize();
  let clip;
  if (until) {
    await page.setViewportSize({ width: size.width, height: 2400 });
    await until.scrollIntoViewIfNeeded({ timeout: 5000 });
    const box = await until.boundingBox();
    if (box) clip = { x: 0, y: 0, width: size.width, height: Math.min(2400, Math.ceil(box.y + box.height + 90)) };
  }
  await page.screenshot({ path: file, clip, timeout: 15_000, animations: 'disabled', caret: 'hide' });
  if (until) await page.setViewportSize(size);
  const shown = path.relative(REPO, file);
  say(`      screenshot ${shown.startsWith('..') ? file : shown}`);
}

/** Closes the Playground's log panel, so the conversation has the room. */
async function hideLogPanel(page) {
  const hide = page.getByRole('button', { name: 'Hide log panel' });
  if (await hide.isVisible()) await hide.click();
}

// ---------------------------------------------------------------- the scenario

async function run(options, logs) {
  const sandbox = await stage(options.attach
    ? `cordon sandbox already running on 127.0.0.1:${options.botPort}`
    : `cordon sandbox started on 127.0.0.1:${options.botPort}`,
  () => (options.attach ? attachToSandbox(options) : startSandbox(options, logs)));

  const playground = await stage('Agents Playground started with the sandbox\'s tenant and users',
    () => startPlayground(options, logs, sandbox));
  say(`      ${playground.command}`);

  check(fs.existsSync(options.chromium), `no browser at ${options.chromium}; install Debian's chromium or pass --chromium`);
  const browser = await chromium.launch({
    executablePath: options.chromium,
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 30_000,
  });
  openBrowser = browser;
  const pages = [];
  try {
    await scenario(browser, playground, options, logs, pages);
  } catch (error) {
    for (const { user, page } of pages) {
      const file = path.join(logs, `failure-${user.split(' ')[0].toLowerCase()}.png`);
      await page.screenshot({ path: file, timeout: 5000 }).catch(() => {});
    }
    throw error;
  } finally {
    await closeBrowser();
  }
}

async function closeBrowser() {
  const browser = openBrowser;
  openBrowser = null;
  if (browser) await Promise.race([browser.close().catch(() => {}), delay(5000)]);
}

async function scenario(browser, playground, options, logs, pages) {
  fs.mkdirSync(options.screenshots, { recursive: true });
  const shots = options.screenshots;

  // The approver's page opens first and waits in the approvals channel: a
  // Playground page only shows bot messages that arrive while it is open.
  const [oscar, sam] = await stage(`${APPROVER} and ${ANALYST} open the Playground in two browser contexts`,
    async () => {
      const approver = await openAs(browser, playground, APPROVER, logs, options, pages);
      const analyst = await openAs(browser, playground, ANALYST, logs, options, pages);
      for (const { page } of [approver, analyst]) await hideLogPanel(page);
      await channelItem(approver, playground.approvalsChannel).click();
      return [approver, analyst];
    });

  // 1. The analyst @mentions the bot in the team's General channel.
  const requestId = await stage(`${ANALYST} posts "@${BOT_NAME} ${COMMAND}" in General; ${BOT_NAME} answers`,
    async () => {
      const { page } = sam;
      await channelItem(sam, 'General').click();
      const compose = page.locator('[contenteditable="true"][role="textbox"]').first();
      await compose.click();
      await compose.pressSequentially(`@${BOT_NAME.slice(0, 3)}`);
      await page.getByRole('listbox', { name: 'Typeahead menu' })
        .getByRole('menuitem', { name: BOT_NAME }).click();
      await compose.pressSequentially(` ${COMMAND}`);
      await page.getByRole('button', { name: 'Post', exact: true }).click();

      const answer = page.getByText(/Containment request received|Request refused|already exists|could not be checked/);
      try {
        await answer.first().waitFor({ timeout: 20_000 });
      } catch {
        throw new CheckFailed(`${BOT_NAME} did not answer the command in General within 20 s ` +
          '(is the bot reachable from the Playground? see sandbox.log and playground.log)');
      }
      const received = page.locator('.ac-adaptiveCard').filter({ hasText: 'Containment request received' });
      const text = await answer.first().innerText();
      check(await received.count() === 1, `${BOT_NAME} did not take the request; it answered:\n${indent(text)}`);
      const cardText = await received.innerText();
      const id = cardText.match(/Request (CR-[A-Z0-9]+)/)?.[1];
      check(id, `the answer names no request id:\n${indent(cardText)}`);
      for (const expected of [TARGET_NAME, INCIDENT, 'Awaiting approval']) {
        check(cardText.includes(expected), `the answer does not show "${expected}":\n${indent(cardText)}`);
      }
      say(`      request ${id}`);
      await screenshot(page, shots, '1-command.png');
      return id;
    });

  // 2. The approval card reaches the approvals channel, for both users.
  await stage(`the approval card for ${requestId} appears in the Approvals channel`, async () => {
    const card = requestCard(oscar.page, requestId, 'Containment approval needed');
    await waitForText(oscar.page.locator('.ac-adaptiveCard'), requestId,
      `${APPROVER}'s Approvals channel`, 20_000);
    const text = await card.innerText();
    for (const expected of ['Awaiting approval', TARGET_NAME, TARGET_UPN, INCIDENT, JUSTIFICATION,
      `Requested by ${ANALYST}`, 'Approvals: 0 of 1']) {
      check(flat(text).includes(expected), `the approval card does not show "${expected}":\n${indent(text)}`);
    }
    await card.getByRole('button', { name: 'Approve or reject…' }).waitFor();

    await channelItem(sam, playground.approvalsChannel).click();
    await waitForText(sam.page.locator('.ac-adaptiveCard'), requestId, `${ANALYST}'s Approvals channel`);
  });

  // 3. The analyst may not approve their own request.
  await stage(`${ANALYST} cannot approve his own request`, async () => {
    const { page } = sam;
    const card = requestCard(page, requestId, 'Containment approval needed');
    const [invoke] = await Promise.all([
      page.waitForRequest('**/_conversation/v1/invoke', { timeout: 15_000 }),
      card.getByRole('button', { name: 'Approve or reject…' }).click(),
    ]);
    await waitForText(page.locator('.ac-adaptiveCard').filter({ hasText: requestId }),
      'You cannot decide on this request', `${ANALYST}'s view of the card`);
    const text = await card.innerText();
    check(/cannot approve it yourself/.test(text), `the refusal does not say why:\n${indent(text)}`);
    check(await card.getByRole('button', { name: 'Approve', exact: true }).count() === 0,
      `${ANALYST}'s view of the card offers Approve`);
    await screenshot(page, shots, '2-self-approval-refused.png');

    // The same click with verb `approve`, as a tampered client would send it.
    const body = JSON.parse(invoke.postData());
    body.value.action.verb = 'approve';
    body.value.action.title = 'Approve';
    const forged = await page.request.post(`${playground.base}/_conversation/v1/invoke`, { data: body, timeout: 15_000 });
    const answer = await forged.json().catch(() => ({}));
    check(answer.type === 'application/vnd.microsoft.activity.message' && /yourself/.test(answer.value),
      `an Approve sent as ${ANALYST} was not refused: HTTP ${forged.status()} ${JSON.stringify(answer)}`);
    say(`      Approve as ${ANALYST} answered: "${answer.value}"`);
    const request = await botApi(options, `/api/v1/containments/${requestId}`);
    check(request.request.state === 'awaiting_approval',
      `after the refused approval the request is ${request.request.state}`);
  });

  // 4. The approver opens their own view of the card and approves.
  const cardMessageId = await stage(`${APPROVER} opens his view of the card and approves`, async () => {
    const { page } = oscar;
    const card = requestCard(page, requestId);
    await card.getByRole('button', { name: 'Approve or reject…' }).click();
    await waitForText(page.locator('.ac-adaptiveCard').filter({ hasText: requestId }),
      'You may decide', `${APPROVER}'s view of the card`);
    const approve = card.getByRole('button', { name: 'Approve', exact: true });
    await approve.waitFor();
    await card.getByRole('button', { name: 'Reject', exact: true }).waitFor();
    await screenshot(page, shots, '3-approval-card.png');

    const request = await botApi(options, `/api/v1/containments/${requestId}`);
    const messageId = request.request.thread?.card_activity_id;
    check(messageId, `the request has no card in a thread: ${JSON.stringify(request.request.thread)}`);

    const clicked = Date.now();
    const [response] = await Promise.all([
      page.waitForResponse('**/_conversation/v1/invoke', { timeout: 15_000 }),
      approve.click(),
    ]);
    const answer = await response.json().catch(() => ({}));
    check(answer.type === 'application/vnd.microsoft.card.adaptive',
      `the Approve click was not answered with a card: ${JSON.stringify(answer).slice(0, 300)}`);
    say(`      Approve answered with the updated card in ${Date.now() - clicked} ms`);
    return messageId;
  });

  // 5. The card everyone sees follows the run until the account is contained.
  await stage('the card updates in place through the run until it shows Contained', async () => {
    const { page } = sam;
    const card = requestCard(page, requestId);
    const statesSeen = () => sam.activities
      .filter((a) => a.action === 'updateMessage' && a.messageId === cardMessageId)
      .map(cardState)
      .filter((state, i, all) => state !== all[i - 1]);
    try {
      await waitForText(page.locator('.ac-adaptiveCard').filter({ hasText: requestId }),
        'Containment: Contained', `${ANALYST}'s Approvals channel`, 30_000);
    } catch (error) {
      throw new CheckFailed(`${error.message}\n      card states seen: ${statesSeen().join(' → ') || 'none'}`);
    }
    const text = await card.innerText();
    for (const expected of [`Approved by ${APPROVER}`, 'is contained', 'Entra ID: block sign-in',
      'Entra ID: revoke sessions', 'ServiceNow: summary note with evidence']) {
      check(text.includes(expected), `the contained card does not show "${expected}":\n${indent(text)}`);
    }
    check(!/Failed|Pending/.test(text), `a step of the run did not finish:\n${indent(text)}`);

    // What reached the analyst's page: every card came as an update of the
    // approval card's own message, never as a new message.
    const states = statesSeen();
    say(`      card states seen by ${ANALYST}: ${states.join(' → ')}`);
    check(states.length >= 2, `only ${states.length} card state(s) reached ${ANALYST}'s page`);
    check(/Contained/.test(states.at(-1)), `the last card update is "${states.at(-1)}"`);
    const cardsInApprovals = sam.activities.filter((a) => a.action === 'createMessage'
      && a.conversationId.startsWith(playground.approvalsChannelId)
      && a.cardTexts.some((t) => t.includes(requestId)));
    check(cardsInApprovals.length === 1 && cardsInApprovals[0].messageId === cardMessageId,
      `the approvals channel got ${cardsInApprovals.length} card messages for ${requestId}, ` +
      'where one card updated in place was expected');

    const request = await botApi(options, `/api/v1/containments/${requestId}`);
    check(request.request.state === 'contained', `the request is ${request.request.state}, not contained`);
  });

  await stage('the thread under the card tells every step, and the requester is told', async () => {
    const { page } = sam;
    const thread = `${playground.approvalsChannelId};messageid=${cardMessageId}`;
    const replies = await waitForActivities(sam, (a) => a.action === 'createMessage' && a.conversationId === thread,
      (found) => found.some((a) => a.text.startsWith('**Contained**')),
      `the reply saying ${requestId} is contained, in the approvals thread`, 20_000);
    const said = replies.map((a) => a.text);
    for (const expected of [`**Approved** by ${APPROVER}`, '✅ Entra ID: block sign-in', '✅ Entra ID: revoke sessions',
      `**Notice for ${TARGET_NAME}`, '**Contained**']) {
      check(said.some((text) => text.startsWith(expected)),
        `no reply in the thread starts with "${expected}"; the thread has:\n${indent(said.join('\n'))}`);
    }
    await waitForText(page.locator('body'), 'The runbook starts now.', 'the approvals thread');
    const lastReply = page.getByText(/is contained: every step of the standard runbook succeeded/).nth(1);
    await lastReply.waitFor({ timeout: 10_000 })
      .catch(() => { throw new CheckFailed('the reply saying the account is contained is not shown in the thread'); });
    await screenshot(page, shots, '4-contained.png', lastReply);

    await channelItem(sam, 'General').click();
    await waitForText(page.locator('body'), `${requestId} is Contained`, `${ANALYST}'s General channel`, 15_000);
    await screenshot(page, shots, '5-requester-told.png');
  });
}

/** Waits until the activities a page received satisfy `done`; returns those that match `filter`. */
async function waitForActivities(opened, filter, done, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = opened.activities.filter(filter);
    if (done(found)) return found;
    if (Date.now() > deadline) {
      throw new CheckFailed(`${what} did not reach ${opened.user}'s page within ${seconds(timeoutMs)}; it got:\n` +
        indent(found.map((a) => a.summary).join('\n') || '(nothing)'));
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------- main

async function main() {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`playground.mjs: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    say(USAGE);
    return 0;
  }

  const logs = fs.mkdtempSync(path.join(os.tmpdir(), 'cordon-e2e-'));
  let finished = false;
  const finish = async (code, message) => {
    if (finished) return code;
    finished = true;
    await closeBrowser();
    await stopChildren();
    if (code === 0) {
      say(`PASS in ${seconds(Date.now() - started)}`);
      if (options.keepLogs) say(`logs: ${logs}`);
      else fs.rmSync(logs, { recursive: true, force: true });
    } else {
      console.error(`\nFAIL at "${currentStage}" after ${seconds(Date.now() - started)}:\n${message}`);
      console.error(`logs (and screenshots of the pages at the failure): ${logs}`);
    }
    return code;
  };

  // The whole run has a budget; every wait inside it has its own timeout too.
  const watchdog = setTimeout(async () => {
    process.exit(await finish(1, `the run took longer than its budget of ${options.timeoutSeconds} s (--timeout)`));
  }, options.timeoutSeconds * 1000);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, async () => process.exit(await finish(130, `interrupted by ${signal}`)));
  }
  process.on('exit', () => {
    for (const child of children.values()) signalGroup(child, 'SIGKILL');
  });

  say(`Cordon in Microsoft 365 Agents Playground (logs in ${logs})`);
  try {
    await run(options, logs);
    return await finish(0);
  } catch (error) {
    let message = error instanceof CheckFailed ? error.message : String(error.message || error);
    const where = error instanceof CheckFailed ? null : error.stack?.split('\n').find((line) => line.includes('playground.mjs'));
    if (where) message += `\n${where.trim()}`;
    return await finish(1, message);
  } finally {
    clearTimeout(watchdog);
  }
}

process.exitCode = await main();
