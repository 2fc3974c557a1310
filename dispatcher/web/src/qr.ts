// A person's sign-in link to the phone app, drawn as a QR code on the
// page (no network: the encoder, qrcode-generator (MIT), is bundled). The
// token is in the link's fragment (after `#`), which browsers never send
// to a server, as the console's `pingji roster token ID --link` makes it.

//! QR Code Generator for JavaScript (qrcode-generator), Copyright (c) 2009 Kazuhiko Arase, MIT license. "QR Code" is a registered trademark of DENSO WAVE INCORPORATED.
import qrcode from "qrcode-generator";

const SVG = "http://www.w3.org/2000/svg";
/** Modules of light border scanners need around the code. */
const QUIET_ZONE = 4;

/** `text` safe in a fragment's `key=value` pair (as the console escapes it). */
function fragmentEscape(text: string): string {
  return [...new TextEncoder().encode(text)]
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[A-Za-z0-9\-_.~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
}

/** The phone app's sign-in link on this web port for `agentId` with `token`. */
export function signInLink(origin: string, agentId: string, token: string): string {
  return `${origin.replace(/\/+$/, "")}/field/#a=${fragmentEscape(agentId)}&t=${fragmentEscape(token)}`;
}

/** The link as an SVG QR code (dark squares on white, with the quiet zone), `label` for screen readers. */
export function qrSvg(link: string, label: string): SVGSVGElement {
  const code = qrcode(0, "L");
  code.addData(link, "Byte");
  code.make();
  const count = code.getModuleCount();
  const side = count + 2 * QUIET_ZONE;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${side} ${side}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.classList.add("qr");
  svg.dataset.modules = String(count);
  const background = document.createElementNS(SVG, "rect");
  background.setAttribute("width", String(side));
  background.setAttribute("height", String(side));
  background.setAttribute("fill", "#fff");
  // One path of unit squares: small to hold, quick to draw.
  let squares = "";
  for (let row = 0; row < count; row += 1) {
    for (let column = 0; column < count; column += 1) {
      if (code.isDark(row, column)) {
        squares += `M${column + QUIET_ZONE} ${row + QUIET_ZONE}h1v1h-1z`;
      }
    }
  }
  const dark = document.createElementNS(SVG, "path");
  dark.setAttribute("d", squares);
  dark.setAttribute("fill", "#000");
  // Not the stroke the person panel's class gives the map's people (inherited).
  dark.setAttribute("stroke", "none");
  background.setAttribute("stroke", "none");
  svg.append(background, dark);
  return svg;
}
