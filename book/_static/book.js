// VAE from Scratch: small helpers for the rendered book (no network, no dependencies).
(function () {
  "use strict";

  // 1. Inline math wider than its line would widen the page on a phone: mark it so book.css
  //    lets it scroll inside its own box.
  function markWideInlineMath() {
    document.querySelectorAll('mjx-container[jax]:not([display="true"])').forEach(function (m) {
      var block = m.parentElement && m.parentElement.closest("p, li, dd, dt, td, th, div, figcaption");
      if (block && m.getBoundingClientRect().right > block.getBoundingClientRect().right + 0.5) {
        m.classList.add("vae-wide-inline");
      }
    });
    document.documentElement.dataset.vaeMathChecked = "1";  // tests wait for this
  }
  function afterMathJax() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(markWideInlineMath);
    }
  }

  // 2. The download menu offers the typeset PDF of the whole book when the build has one
  //    (bash .ci/pdf copies it to the site root), beside "print this page".
  function offerBookPdf() {
    var root = document.documentElement.dataset.content_root || "./";
    var url = root + "vae-from-scratch.pdf";
    var menu = document.querySelector(".dropdown-download-buttons ul, .dropdown-download-buttons .dropdown-menu");
    if (!menu || !window.fetch) return;
    fetch(url, { method: "HEAD" }).then(function (r) {
      if (!r.ok) return;
      var li = document.createElement("li");
      li.innerHTML = '<a href="' + url + '" class="btn btn-sm dropdown-item" title="The whole book, typeset (PDF)">' +
        '<span class="btn__icon-container"><i class="fas fa-book"></i></span>' +
        '<span class="btn__text-container">whole book (.pdf)</span></a>';
      menu.appendChild(li);
      var print = document.querySelector(".btn-download-pdf-button .btn__text-container");
      if (print) print.textContent = "print page";
    }).catch(function () {});
  }

  // 3. Search result snippets: show math as readable text, not raw TeX.
  var GREEK = { alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε",
    zeta: "ζ", eta: "η", theta: "θ", lambda: "λ", mu: "μ", nu: "ν", xi: "ξ", pi: "π", rho: "ρ",
    sigma: "σ", tau: "τ", phi: "φ", varphi: "φ", chi: "χ", psi: "ψ", omega: "ω", Sigma: "Σ",
    Gamma: "Γ", Delta: "Δ", Lambda: "Λ", Phi: "Φ", Psi: "Ψ", Omega: "Ω", sum: "Σ", prod: "Π",
    int: "∫", infty: "∞", le: "≤", leq: "≤", ge: "≥", geq: "≥", approx: "≈", ne: "≠", neq: "≠",
    cdot: "·", times: "×", mid: "|", in: "∈", to: "→", sim: "∼", nabla: "∇", partial: "∂",
    log: "log", exp: "exp", mathcal: "", mathbf: "", boldsymbol: "", mathrm: "", operatorname: "",
    text: "", left: "", right: "", big: "", Big: "", bigl: "", bigr: "", quad: " ", qquad: " ",
    frac: "", mathbb: "", mathsf: "", mathit: "", hat: "", tilde: "", bar: "", top: "ᵀ",
    odot: "⊙", mathrm: "", operatorname: "", displaystyle: "", limits: "" };
  function texToText(tex) {
    return tex
      .replace(/\\begin\{[^}]*\}|\\end\{[^}]*\}|\\label\{[^}]*\}|\\tag\{[^}]*\}|\\nonumber/g, " ")
      .replace(/^\s*(\\\[|\\\(|\$\$?)|(\\\]|\\\)|\$\$?)\s*$/g, "")
      .replace(/\\([A-Za-z]+)/g, function (_, name) { return name in GREEK ? GREEK[name] : name; })
      .replace(/\\[,;:! ]|&|\\\\/g, " ")
      .replace(/[{}_^]/g, "")
      .replace(/\s+/g, " ")
      .replace(/([(\[|]) /g, "$1")
      .replace(/ ([)\],])/g, "$1")
      .trim();
  }
  function patchSearch() {
    // searchtools.js declares `const Search` (a global binding, not a property of window)
    if (typeof Search === "undefined" || !Search.htmlToText || Search.__vaePatched) return;
    var original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      var doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll(".math").forEach(function (el) {
        el.querySelectorAll(".eqno").forEach(function (n) { n.remove(); });
        el.textContent = " " + texToText(el.textContent) + " ";
      });
      return original.call(this, doc.documentElement.outerHTML, anchor);
    };
    Search.__vaePatched = true;
  }

  // 4. A figure is drawn at twice the screen's pixel density; on a small screen, tapping it opens
  //    the image by itself, where it can be zoomed.
  function zoomableFigures() {
    document.querySelectorAll(".cell_output figure img, .cell_output img").forEach(function (img) {
      if (img.closest("a")) return;
      img.classList.add("vae-zoomable");
      img.title = img.title || "Open the figure by itself (zoomable)";
      img.addEventListener("click", function () { window.open(img.src, "_blank", "noopener"); });
    });
  }

  patchSearch();
  document.addEventListener("DOMContentLoaded", function () {
    patchSearch();
    zoomableFigures();
    afterMathJax();
    offerBookPdf();
  });
  window.addEventListener("load", afterMathJax);
})();
