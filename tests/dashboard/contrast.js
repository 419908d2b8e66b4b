/* The text elements matching a selector whose contrast with the first opaque background
 * behind them is under 4.5:1 (WCAG AA). Colours become sRGB through a canvas, whatever CSS
 * wrote them in (unfold uses oklch). Run by test_accessibility.py with page.evaluate. */
(selector) => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const rgba = (color) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "#000"; ctx.fillStyle = color; ctx.fillRect(0, 0, 1, 1);
    return Array.from(ctx.getImageData(0, 0, 1, 1).data);
  };
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const color = rgba(getComputedStyle(node).backgroundColor);
      if (color[3] === 255) return color;
    }
    return [255, 255, 255, 255];
  };
  const worst = [];
  for (const element of document.querySelectorAll(selector)) {
    const style = getComputedStyle(element);
    if (!element.textContent.trim() || element.offsetParent === null || style.visibility === "hidden") continue;
    if (element.closest(".material-symbols-outlined, [aria-hidden=true], .sr-only")) continue;
    let opacity = 1;
    for (let node = element; node; node = node.parentElement) opacity *= Number(getComputedStyle(node).opacity);
    if (opacity < 1) continue;
    const fg = luminance(rgba(style.color)), bg = luminance(background(element));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) worst.push(`${ratio.toFixed(2)} ${element.tagName}.${element.className} "${element.textContent.trim().slice(0, 30)}"`);
  }
  return worst;
}
