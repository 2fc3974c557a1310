// Draws the phone app's icons (a white map pin on red) as PNG files, with
// no dependencies: each pixel is sampled 4×4 times for smooth edges and the
// PNG is written with node's zlib. Run: node src/field/make-icons.mjs
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";

const RED = [183, 28, 28];
const WHITE = [255, 255, 255];

/** The colour at (x, y), both 0..1 across the icon. */
function colour(x, y) {
  // The pin: a circle whose lower half narrows to a point.
  const cx = 0.5;
  const cy = 0.42;
  const r = 0.22;
  const dx = x - cx;
  const dy = y - cy;
  const inCircle = dx * dx + dy * dy <= r * r;
  const tipY = 0.8;
  const inPoint = y >= cy && y <= tipY && Math.abs(dx) <= (r * (tipY - y)) / (tipY - cy);
  const inHole = dx * dx + dy * dy <= (r * 0.42) ** 2;
  return (inCircle || inPoint) && !inHole ? WHITE : RED;
}

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
    }
  }
  return ~crc >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function png(size) {
  const rows = Buffer.alloc(size * (size * 3 + 1));
  const samples = 4;
  for (let y = 0; y < size; y += 1) {
    rows[y * (size * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x += 1) {
      const sum = [0, 0, 0];
      for (let sy = 0; sy < samples; sy += 1) {
        for (let sx = 0; sx < samples; sx += 1) {
          const rgb = colour((x + (sx + 0.5) / samples) / size, (y + (sy + 0.5) / samples) / size);
          for (let c = 0; c < 3; c += 1) sum[c] += rgb[c];
        }
      }
      for (let c = 0; c < 3; c += 1) {
        rows[y * (size * 3 + 1) + 1 + x * 3 + c] = Math.round(sum[c] / (samples * samples));
      }
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // RGB
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(rows, { level: 9 })), chunk("IEND", Buffer.alloc(0))]);
}

const folder = new URL(".", import.meta.url);
for (const size of [192, 512]) {
  writeFileSync(new URL(`icon-${size}.png`, folder), png(size));
}
