// The field report screen (category, text, location, photos), and the
// photo choosers it shares with the completion form.

import { say } from "./i18n.js";
import { act } from "./actions.js";
import { thumbnail } from "./photos.js";
import { byId, page, render } from "./state.js";

export function drawReport(): void {
  const where = page.position ? say("reportLocationHere", { m: Math.round(page.position.accuracy) }) : say("locationNone");
  byId("report-where").textContent = say("reportLocation", { where });
  byId("report-photo-count").textContent = page.chosenPhotos.report.length > 0 ? say("photoCount", { n: page.chosenPhotos.report.length }) : "";
}

export function wireReports(): void {
  for (const which of ["complete", "report"]) {
    const input = byId<HTMLInputElement>(`${which}-photos`);
    input.addEventListener("change", () => {
      const added = [...(input.files ?? [])];
      page.chosenPhotos[which] = [...page.chosenPhotos[which], ...added];
      input.value = "";
      render();
      void showThumbnails(which, added);
    });
  }
  byId("report-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = byId<HTMLTextAreaElement>("report-text");
    const photos = page.chosenPhotos.report;
    page.chosenPhotos.report = [];
    byId("report-thumbs").replaceChildren();
    const where = page.position ? { lon: page.position.lon, lat: page.position.lat } : undefined;
    void act("report", { category: byId<HTMLSelectElement>("report-category").value, text: text.value.trim(), location: where }, photos);
    text.value = "";
    render();
  });
}

/** Small pictures of the photos chosen, so the person sees what goes. */
export async function showThumbnails(which: string, added: Blob[]): Promise<void> {
  const into = byId(`${which}-thumbs`);
  for (const photo of added) {
    const source = await thumbnail(photo);
    if (source !== "") {
      const picture = new Image();
      picture.src = source;
      picture.alt = `${say("photos")} ${into.children.length + 1}`;
      into.append(picture);
    }
  }
}
