// Photos from the camera, made small enough for UploadPhoto: a photo over
// the dispatcher's limit is drawn smaller on a canvas and sent as JPEG.

/** UploadPhoto's limit: 10 MiB of image (pingji.proto). */
export const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
const LONGEST_SIDE_PX = 2560;

/** `photo` as it is when within the limit, else scaled down until it is. */
export async function withinLimit(photo: Blob): Promise<Blob> {
  if (photo.size <= MAX_PHOTO_BYTES) {
    return photo;
  }
  const bitmap = await createImageBitmap(photo);
  let scale = Math.min(1, LONGEST_SIDE_PX / Math.max(bitmap.width, bitmap.height));
  for (;;) {
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const smaller = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    if (smaller && smaller.size <= MAX_PHOTO_BYTES) {
      bitmap.close();
      return smaller;
    }
    scale /= 2;
  }
}

/** A small picture of `photo` (a data: URL, which the page's CSP allows). */
export async function thumbnail(photo: Blob, side = 160): Promise<string> {
  try {
    const bitmap = await createImageBitmap(photo);
    const scale = side / Math.max(bitmap.width, bitmap.height);
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    return canvas.toDataURL("image/jpeg", 0.7);
  } catch {
    return ""; // not a picture the browser can draw (e.g. HEIC): counted, not shown
  }
}
