// The invitation page's "Copy link" button: copies the new invitation link to the clipboard.
(() => {
  "use strict";
  const button = document.getElementById("invite-copy");
  if (!button) return;
  button.addEventListener("click", async () => {
    const input = document.getElementById(button.dataset.copy);
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "Copied";
    } catch {
      // No clipboard access (plain http on another host): the link stays selected for Ctrl+C.
      button.textContent = "Press Ctrl+C to copy";
    }
  });
})();
