// A <select data-submit-on-change> submits its form when its value changes (no inline
// onchange handlers: the Content-Security-Policy allows only script files).
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.hasAttribute("data-submit-on-change") && field.form) field.form.submit();
});
