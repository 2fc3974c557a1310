// Photos people sent with a completion or a field report, on the command
// map: read with GetPhoto over the page's own grpc-web client (dispatcher
// and above: the server refuses a viewer, and the page shows a viewer
// none), shown as small buttons that open the photo large. Pictures become
// data: URLs, which the page's strict Content-Security-Policy already
// allows for images (img-src 'self' data:): no blob: source is needed.

/** GetPhoto, as the page calls it. */
export type ReadPhoto = (photoRef: string) => Promise<{ contentType: string; data: Uint8Array }>;

/** A photo as the page shows it; "" where the browser cannot draw it (HEIC in Chromium). */
interface Shown {
  thumbnail: string;
  full: string;
}

/** Photos kept drawn (the newest asked for): a panel shows a few at a time. */
const KEPT = 40;
const THUMBNAIL_PX = 96;
const shown = new Map<string, Promise<Shown>>();
const ready = new Map<string, Shown>();

/** Forgets every photo (after logging out: the next operator may not see them). */
export function forgetPhotos(): void {
  shown.clear();
  ready.clear();
}

function dataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("the photo cannot be read"));
    reader.readAsDataURL(blob);
  });
}

async function draw(photoRef: string, read: ReadPhoto): Promise<Shown> {
  const photo = await read(photoRef);
  const blob = new Blob([new Uint8Array(photo.data)], { type: photo.contentType });
  try {
    const bitmap = await createImageBitmap(blob);
    const scale = Math.min(1, THUMBNAIL_PX / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    return { thumbnail: canvas.toDataURL("image/png"), full: await dataUrl(blob) };
  } catch {
    return { thumbnail: "", full: "" };
  }
}

function photo(photoRef: string, read: ReadPhoto): Promise<Shown> {
  const known = shown.get(photoRef);
  if (known) {
    // The newest asked for go last: the oldest are forgotten first.
    shown.delete(photoRef);
    shown.set(photoRef, known);
    return known;
  }
  const drawing = draw(photoRef, read).then((done) => {
    ready.set(photoRef, done);
    return done;
  });
  drawing.catch(() => shown.delete(photoRef));
  shown.set(photoRef, drawing);
  for (const oldest of shown.keys()) {
    if (shown.size <= KEPT) {
      break;
    }
    shown.delete(oldest);
    ready.delete(oldest);
  }
  return drawing;
}

export interface StripWords {
  /** The button's label for photo `n` of `count`. */
  label: (n: number, count: number) => string;
  /** Said when the photo cannot be read (e.g. no longer kept). */
  failed: (message: string) => string;
  /** Said on a photo the browser cannot draw (HEIC). */
  notDrawn: string;
}

/** Buttons showing each photo small; a click (or Enter) calls `open` with the photo large. */
export function photoStrip(
  photoRefs: string[],
  read: ReadPhoto,
  open: (photoRef: string, full: string) => void,
  focusKey: string,
  words: StripWords,
): HTMLElement {
  const strip = document.createElement("div");
  strip.className = "photos";
  photoRefs.forEach((photoRef, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "photo";
    button.dataset.photoRef = photoRef;
    button.dataset.focusKey = `${focusKey}:${photoRef}`;
    button.setAttribute("aria-label", words.label(index + 1, photoRefs.length));
    const image = document.createElement("img");
    image.alt = "";
    button.append(image);
    const put = (done: Shown): void => {
      if (done.thumbnail === "") {
        button.textContent = words.notDrawn;
        button.dataset.state = "not-drawn";
        return;
      }
      image.src = done.thumbnail;
      button.dataset.state = "shown";
      button.onclick = () => open(photoRef, done.full);
    };
    const known = ready.get(photoRef);
    if (known) {
      put(known);
    } else {
      button.dataset.state = "loading";
      photo(photoRef, read).then(put, (error: unknown) => {
        button.dataset.state = "failed";
        button.textContent = "!";
        button.title = words.failed(error instanceof Error ? error.message : String(error));
      });
    }
    strip.append(button);
  });
  return strip;
}
