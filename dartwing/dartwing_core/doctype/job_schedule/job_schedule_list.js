// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Frappe runs this script whenever it loads the doctype: stored text shows escaped in every view
// (dartwing.stored_text in dartwing/public/js/dartwing.bundle.js).
dartwing.stored_text.install("Job Schedule");
