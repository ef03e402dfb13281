/**
 * The node's dashboard in a real browser: Debian's chromium, headless, driven by playwright-core, against Alice's and
 * Bob's in-process nodes (real control APIs) over two anvil chains. Sign in (a wrong token refused), open a channel
 * from Alice's dashboard and see it on Bob's, propose a swap and follow it to swapped (Bob's link up on the
 * Overview), deposit (the Events view in token units), a swap Bob refuses, the views and a deposit by keyboard only,
 * a cooperative close (no withdraw offered with nothing held), force close a channel and see its challenge countdown
 * and then its payout. Any console error or uncaught page error fails the test. Screenshots
 * of each view at a desktop and a phone width are taken every run, into a temporary folder; with
 * DASHBOARD_SCREENSHOTS=docs/dashboard they replace the ones the README shows (a test run leaves the tree as it was).
 */
import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

import { CHALLENGE_PERIOD, anvilNodes, startAnvilNodes, stopAnvilNodes, type Who } from "../helpers/anvil-nodes.js";
import { until } from "../helpers/nodes.js";

const SHOTS = process.env.DASHBOARD_SCREENSHOTS !== undefined ? resolve(process.env.DASHBOARD_SCREENSHOTS) : mkdtempSync(join(tmpdir(), "dashboard-shots-"));
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 360, height: 740 };
/** How long the page may take to show what the nodes did (a block a second, a tick of 250 ms). */
const SEEN = 60_000;

/** Debian's chromium, or a failure saying how to get it: this test is never skipped. */
function chromiumPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not installed: the dashboard test drives Debian's chromium (`.ci/run` installs it as root: apt-get install -y chromium)");
  }
}

type Channel = { id: string; status: string; base: { deposits: string[]; onChainDeposits?: string[] } };

describe("the node's dashboard in headless Chromium (two nodes, two anvil chains)", function () {
  this.timeout(180_000);
  const env = anvilNodes("dashboard");
  const { nodes, anvils } = env;
  let browser: Browser;
  /** Console errors and uncaught page errors, from every page: the test fails on any. */
  const errors: string[] = [];
  /** Console errors a page is expected to log (the browser's own line for a 401 the test provokes). */
  const expected = new Map<Page, RegExp>();
  const pages: Partial<Record<Who, Page>> = {};
  let s = "";

  const root = (who: Who) => nodes.run[who]!.base.replace(/\/api\/v1$/, "/");
  const counted = async (who: Who, id: string) => {
    const c = (await nodes.api<Channel>(who, "GET", `/channels/${id}`)).json;
    return c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join() ? true : undefined;
  };

  async function newPage(who: Who, viewport = DESKTOP): Promise<Page> {
    const page = await browser.newPage({ viewport });
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      const allowed = expected.get(page);
      if (allowed !== undefined && allowed.test(m.text())) return;
      errors.push(`${who}: console: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${who}: page error: ${e.message}`));
    await page.goto(root(who));
    return page;
  }

  async function signIn(page: Page, who: Who): Promise<void> {
    // By keyboard: the token field takes the focus with Tab, Enter submits.
    await page.getByLabel("API token").focus();
    await page.keyboard.type(nodes.run[who]!.token);
    await page.keyboard.press("Enter");
    await page.getByRole("link", { name: "Overview" }).waitFor({ timeout: SEEN });
  }

  const show = (page: Page, view: string) => page.getByRole("link", { name: view, exact: true }).click();

  async function shoot(page: Page, name: string): Promise<void> {
    for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]] as const) {
      await page.setViewportSize(viewport);
      if (size === "phone") {
        const width = await page.evaluate<number>("document.documentElement.scrollWidth");
        expect(width, `${name}: nothing wider than the phone's ${PHONE.width} px`).to.be.at.most(PHONE.width);
      }
      await page.screenshot({ path: join(SHOTS, `${name}-${size}.png`), fullPage: true });
    }
    await page.setViewportSize(DESKTOP);
  }

  before(async function () {
    const executablePath = chromiumPath();
    execFileSync(process.execPath, [join("scripts", "package", "build-dashboard.mjs")], { stdio: "pipe" });
    mkdirSync(SHOTS, { recursive: true });
    await startAnvilNodes(env, {
      chainIds: [31_431, 31_432], confirmations: 1, finalitySeconds: 6,
      timing: { tickMs: 250, heartbeatSeconds: 2, chainCheckSeconds: 1, resendMs: 1_000, confirmationTimeoutMs: 30_000, onChainMarginSeconds: 600, challengePeriodSeconds: CHALLENGE_PERIOD },
    });
    browser = await chromium.launch({ executablePath, headless: true });
  });

  afterEach(function () {
    expect(errors, "console errors and page errors").to.deep.equal([]);
  });

  after(async function () {
    await browser?.close();
    await stopAnvilNodes(env);
  });

  it("serves the page without a token under a strict CSP, names outside its three files 404, and refuses a wrong token", async function () {
    const page = await fetch(root("alice"));
    expect(page.status).to.equal(200);
    expect(page.headers.get("content-security-policy")).to.equal("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    expect(page.headers.get("x-content-type-options")).to.equal("nosniff");
    expect(await page.text()).to.not.match(/<script>|<style>|style=/);
    for (const path of ["dashboard/app.js", "dashboard/app.css"]) expect((await fetch(root("alice") + path)).status, path).to.equal(200);
    for (const path of ["dashboard/", "dashboard/nope.js", "dashboard/..%2fpackage.json", "dashboard/index.html/x"]) {
      const res = await fetch(root("alice") + path);
      expect(res.status, path).to.equal(404);
      expect(await res.text(), path).to.not.include("crosschain-channels");
    }
    // A path climbing out of the folder is another path once normalised: not a dashboard file, so behind the token.
    const out = await fetch(root("alice") + "dashboard/%2e%2e/%2e%2e/package.json");
    expect([out.status, (await out.text()).includes("crosschain-channels")]).to.deep.equal([401, false]);
    const denied = await fetch(`${nodes.run.alice!.base}/info`);
    expect([denied.status, denied.headers.get("content-security-policy") !== null]).to.deep.equal([401, true]);

    const wrong = await newPage("alice");
    expected.set(wrong, /status of 401/); // the browser's own line for the refused /info
    // The right token with its last digit changed (to another digit: a token ending in 0 stays wrong).
    const token = nodes.run.alice!.token;
    await wrong.getByLabel("API token").fill(`${token.slice(0, -1)}${token.endsWith("0") ? "1" : "0"}`);
    await shoot(wrong, "signin");
    await wrong.getByRole("button", { name: "Sign in" }).click();
    await wrong.getByRole("alert").filter({ hasText: "refused this token (401)" }).waitFor({ timeout: SEEN });
    expect(await wrong.evaluate<number>("sessionStorage.length"), "nothing kept of a refused token").to.equal(0);
    await wrong.close();
  });

  it("opens a channel from Alice's dashboard, and Bob's dashboard shows his side of it", async function () {
    const alice = (pages.alice = await newPage("alice"));
    await signIn(alice, "alice");
    expect(alice.url(), "the token never in the URL").to.not.include(nodes.run.alice!.token);
    await show(alice, "Channels");
    const form = alice.getByRole("form", { name: "Open a channel" });
    await form.getByLabel("Peer").selectOption("bob");
    await form.getByLabel("Asset").selectOption("ETH@source");
    await form.getByLabel("Deposit").fill("2");
    await form.getByRole("button", { name: "Open channel" }).click();
    const card = alice.locator("[data-channel][data-status=open]");
    await card.first().waitFor({ timeout: SEEN });
    s = (await card.first().getAttribute("data-channel"))!;

    const bob = (pages.bob = await newPage("bob"));
    await signIn(bob, "bob");
    await show(bob, "Channels");
    await bob.locator(`[data-channel="${s}"][data-status=open]`).waitFor({ timeout: SEEN });
    expect(await bob.locator(`[data-channel="${s}"] > h3`).innerText()).to.match(/^alice\s+ETH@source/);
    // Bob opens the other channel of a swap, on the target chain, from his dashboard.
    const bobForm = bob.getByRole("form", { name: "Open a channel" });
    await bobForm.getByLabel("Peer").selectOption("alice");
    await bobForm.getByLabel("Asset").selectOption("ETH@target");
    await bobForm.getByLabel("Deposit").fill("2");
    await bobForm.getByRole("button", { name: "Open channel" }).click();
    await alice.locator("[data-channel][data-status=open]").nth(1).waitFor({ timeout: SEEN });
    const ids = await alice.locator("[data-channel]").evaluateAll((els) => els.map((e) => e.getAttribute("data-channel")!));
    for (const who of ["alice", "bob"] as const) for (const id of ids) await until(`${who}: ${id} deposits counted`, () => counted(who, id));
  });

  it("proposes a swap from Alice's dashboard and follows its phases to swapped", async function () {
    const alice = pages.alice!;
    await show(alice, "Swaps");
    const form = alice.getByRole("form", { name: "Propose a swap" });
    await form.getByLabel("Peer").selectOption("bob");
    await form.getByLabel("Give").fill("0.5 ETH@source");
    await form.getByLabel("Take").fill("0.25 ETH@target");
    await form.getByRole("button", { name: "Propose swap" }).click();
    const swap = alice.locator("[data-swap]").first();
    await alice.locator("[data-swap], .notice.error").first().waitFor({ timeout: SEEN });
    const refused = await alice.locator(".notice.error").count();
    expect(refused, refused === 0 ? "" : await alice.locator(".notice.error").innerText()).to.equal(0);
    const seen = new Set<string>();
    await until("the swap swapped on Alice's dashboard", async () => {
      const phase = await swap.getAttribute("data-phase");
      if (phase !== null) seen.add(phase);
      return (await swap.getAttribute("data-outcome")) === "swapped" ? true : undefined;
    }, SEEN);
    expect(await swap.locator("[data-testid=outcome]").innerText()).to.equal("swapped");
    expect(await swap.locator(".timeline li.past").count(), "every phase passed").to.equal(5);
    // Bob's dashboard has it too, done.
    await show(pages.bob!, "Swaps");
    await pages.bob!.locator("[data-swap][data-outcome=swapped]").first().waitFor({ timeout: SEEN });
    // After the swap's exchanges each side sees the other's link up on its Overview.
    await show(alice, "Overview");
    await alice.locator("[data-peer=bob][data-link=up]").waitFor({ timeout: SEEN });
    expect(await alice.locator("[data-peer=bob] [data-testid=peer-link]").innerText()).to.match(/^up\s+last exchange \d+ s ago$/);
    await show(alice, "Swaps");
    await shoot(alice, "swaps");
  });

  it("deposits into an open channel, and the Events view shows the co-signed deposits in token units (the raw base units in the title)", async function () {
    const alice = pages.alice!;
    await show(alice, "Channels");
    const card = alice.locator(`[data-channel="${s}"]`);
    await card.getByLabel("Amount").fill("0.5");
    await card.getByRole("button", { name: "Deposit", exact: true }).click();
    await until("the deposit counted on both sides", async () => ((await counted("alice", s)) && (await counted("bob", s)) ? (await nodes.api<Channel>("alice", "GET", `/channels/${s}`)).json.base.deposits.includes("2500000000000000000") || undefined : undefined), SEEN);
    await show(alice, "Events");
    const line = alice.getByTestId("events").locator("li", { hasText: /deposits=\[(2\.5, 0|0, 2\.5)\] ETH@source/ }).first();
    await line.waitFor({ timeout: SEEN });
    expect(await line.locator(".amount").first().getAttribute("title")).to.match(/^deposits=\["(2500000000000000000","0|0","2500000000000000000)"\]$/);
  });

  it("deposits from Bob's dashboard, then shows a swap Bob refuses (above his maxAmount) in Bob's refusals as it comes, and on Alice's swap card with the reason", async function () {
    const alice = pages.alice!;
    const bob = pages.bob!;
    // Bob deposits 1 more into his target channel from his dashboard (1.75 free there after the swap), so that 2.5 is
    // backed on his side: Alice's node proposes it, and Bob's policy (maxAmount 2) refuses it.
    await show(bob, "Channels");
    const t = (await bob.locator(`[data-channel]:not([data-channel="${s}"])`).first().getAttribute("data-channel"))!;
    await bob.locator(`[data-channel="${t}"]`).getByLabel("Amount").fill("1");
    await bob.locator(`[data-channel="${t}"]`).getByRole("button", { name: "Deposit", exact: true }).click();
    await until("Bob's deposit counted on both sides", async () => ((await counted("alice", t)) && (await counted("bob", t)) ? (await nodes.api<Channel>("bob", "GET", `/channels/${t}`)).json.base.deposits.includes("3000000000000000000") || undefined : undefined), SEEN);
    await show(bob, "Events");
    await show(alice, "Swaps");
    const form = alice.getByRole("form", { name: "Propose a swap" });
    await form.getByLabel("Peer").selectOption("bob");
    await form.getByLabel("Give").fill("0.5 ETH@source");
    await form.getByLabel("Take").fill("2.5 ETH@target");
    await form.getByRole("button", { name: "Propose swap" }).click();
    await bob.getByTestId("refusals").locator("li", { hasText: "maxAmount 2" }).waitFor({ timeout: SEEN });
    expect(await bob.getByTestId("refusals").locator("li").first().innerText()).to.match(/swap from alice: take 2\.5 ETH@target is more than maxAmount 2/);
    const outcome = alice.locator("[data-swap]").first().getByTestId("outcome");
    await outcome.waitFor({ timeout: SEEN });
    expect(await outcome.innerText()).to.match(/maxAmount 2/);
  });

  it("moves through the views and deposits with the keyboard only, the focus visible on each control", async function () {
    const alice = pages.alice!;
    await show(alice, "Overview");
    await alice.locator("body").focus();
    /** Presses Tab until the focused element matches `selector` (at most `max` presses); returns its outline. */
    const tabTo = async (selector: string, max = 60) => {
      for (let i = 0; i < max; i++) {
        await alice.keyboard.press("Tab");
        if (await alice.evaluate<boolean>(`document.activeElement?.matches(${JSON.stringify(selector)}) ?? false`)) {
          return alice.evaluate<string>("getComputedStyle(document.activeElement).outlineStyle");
        }
      }
      throw new Error(`Tab never reached ${selector}`);
    };
    for (const view of ["Swaps", "Events", "Channels"]) {
      expect(await tabTo(`nav a[href="#${view.toLowerCase()}"]`), `${view}: focus ring`).to.equal("solid");
      await alice.keyboard.press("Enter");
      await alice.getByRole("heading", { name: view, level: 2 }).waitFor({ timeout: SEEN });
      await alice.evaluate("document.activeElement?.blur()");
    }
    // The deposit form of the channel: Tab to its amount, type, Enter submits.
    expect(await tabTo(`[data-channel="${s}"] input`)).to.equal("solid");
    await alice.keyboard.type("0.25");
    await alice.keyboard.press("Enter");
    await until("the keyboard's deposit counted", async () => ((await nodes.api<Channel>("alice", "GET", `/channels/${s}`)).json.base.deposits.includes("2750000000000000000") || undefined), SEEN);
    // Space opens the force close dialog; Escape leaves it, nothing sent.
    expect(await tabTo(`[data-channel="${s}"] button.danger`)).to.equal("solid");
    await alice.keyboard.press("Space");
    const dialog = alice.locator(`[data-channel="${s}"] dialog[open]`);
    await dialog.waitFor({ timeout: SEEN });
    await alice.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached", timeout: SEEN });
    expect(await alice.locator(`[data-channel="${s}"]`).getAttribute("data-status")).to.equal("open");
  });

  it("closes the target channel cooperatively from Alice's dashboard; with nothing held by the hub no withdraw is offered", async function () {
    const alice = pages.alice!;
    await show(alice, "Channels");
    const other = alice.locator(`[data-channel]:not([data-channel="${s}"])`).first();
    const t = (await other.getAttribute("data-channel"))!;
    const card = alice.locator(`[data-channel="${t}"]`);
    await card.getByRole("button", { name: "Close", exact: true }).click();
    await alice.locator(`[data-channel="${t}"][data-status=closed]`).waitFor({ timeout: SEEN });
    await card.getByTestId("nothing-held").waitFor({ timeout: SEEN });
    expect(await card.getByRole("button", { name: /^Withdraw/ }).count()).to.equal(0);
    await card.getByTestId("payout").waitFor({ timeout: SEEN });
    await show(pages.bob!, "Channels");
    await pages.bob!.locator(`[data-channel="${t}"][data-status=closed]`).waitFor({ timeout: SEEN });
  });

  it("force closes a channel after its confirmation, shows the challenge countdown, then the payout", async function () {
    const alice = pages.alice!;
    await show(alice, "Channels");
    const card = alice.locator(`[data-channel="${s}"]`);
    await card.getByRole("button", { name: "Force close" }).click();
    const dialog = card.getByRole("dialog");
    await dialog.waitFor();
    expect(await dialog.innerText()).to.match(/sends a transaction on source[\s\S]*challenge period, 5 min/);
    await dialog.getByRole("button", { name: "Force close" }).click();
    await alice.locator(`[data-channel="${s}"][data-status=disputed]`).waitFor({ timeout: SEEN });
    const countdown = await card.getByTestId("challenge-deadline").innerText();
    expect(countdown).to.match(/challenge period ends .+ \(in \d+ (min|s)/);
    await show(alice, "Overview");
    expect(await alice.getByTestId("nearest-deadline").innerText()).to.match(/challenge period of channel .+ \(in \d+ (min|s)/);
    await shoot(alice, "overview");
    await show(alice, "Channels");
    await shoot(alice, "channels");
    await show(alice, "Events");
    await alice.getByTestId("events").waitFor({ timeout: SEEN });
    await shoot(alice, "events");
    // Past the challenge period the node settles the channel; the page shows what it paid out.
    await anvils[0]!.rpc("evm_increaseTime", [CHALLENGE_PERIOD + 5]);
    await anvils[0]!.rpc("evm_mine", []);
    await show(alice, "Channels");
    await alice.locator(`[data-channel="${s}"][data-status=closed]`).waitFor({ timeout: 90_000 });
    await card.getByTestId("payout").waitFor({ timeout: SEEN });
    expect(await card.getByTestId("payout").innerText()).to.match(/paid out: mine 2\.25 ETH@source, theirs 0\.5 ETH@source/);
  });
});
