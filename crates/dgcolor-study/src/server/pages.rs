//! The participant's pages, rendered on the server: every page works without JavaScript
//! (answers are plain form posts; the progress bar is a `<progress>` element). The small
//! script only adds the browser's own response time, keyboard shortcuts and a guard
//! against double clicks. Nothing here is given a method name: pages see image and item
//! ids, positions and the question's noun.

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub const CSS: &str = r#"
:root{--ink:#1d2430;--muted:#5b6575;--line:#d8dde5;--accent:#2b6cb0;--yes:#2f855a;--no:#b83232;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg);line-height:1.5}
main{max-width:920px;margin:0 auto;padding:1.5rem 1.25rem 3rem}
header.bar{background:#fff;border-bottom:1px solid var(--line)}
header.bar div{max-width:920px;margin:0 auto;padding:.6rem 1.25rem;display:flex;gap:1rem;align-items:center;justify-content:space-between}
header.bar strong{font-size:1rem}
.progress{display:flex;align-items:center;gap:.6rem;color:var(--muted);font-size:.9rem}
progress{width:min(40vw,260px);height:.7rem;accent-color:var(--accent)}
h1{font-size:1.6rem;margin:.2rem 0 1rem}
h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
.part{color:var(--accent);font-weight:600;text-transform:uppercase;letter-spacing:.04em;font-size:.8rem;margin:0}
.question{font-size:1.35rem;margin:.2rem 0 1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:1.25rem 1.5rem;margin:1rem 0}
figure.single{margin:0 auto 1.2rem;text-align:center}
figure.single img{width:min(70vmin,460px);height:auto;border-radius:6px;border:1px solid var(--line);image-rendering:auto;background:#fff}
.answers{display:flex;gap:1rem;justify-content:center;flex-wrap:wrap}
button{font:inherit;cursor:pointer}
.answers button{min-width:11rem;padding:.8rem 1.4rem;font-size:1.1rem;border-radius:8px;border:2px solid transparent;color:#fff}
button.yes{background:var(--yes)}
button.no{background:var(--no)}
button.primary{background:var(--accent);color:#fff;border:0;border-radius:8px;padding:.75rem 1.6rem;font-size:1.05rem}
.answers button:focus-visible,.options button:focus-visible,button.primary:focus-visible{outline:3px solid #f6ad55;outline-offset:2px}
.options{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:1rem}
.options button{background:#fff;border:2px solid var(--line);border-radius:10px;padding:.6rem;display:flex;flex-direction:column;align-items:center;gap:.4rem}
.options button:hover{border-color:var(--accent)}
.options img{width:100%;max-width:280px;height:auto;border-radius:6px;image-rendering:auto}
.options span{font-weight:600;color:var(--muted)}
.hint{color:var(--muted);font-size:.9rem;text-align:center;margin-top:1rem}
label.consent{display:flex;gap:.6rem;align-items:flex-start;margin:1rem 0}
label.consent input{margin-top:.35rem;transform:scale(1.2)}
ul{padding-left:1.3rem}
.code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:1.2rem;background:#eef2f7;padding:.2rem .5rem;border-radius:4px}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid var(--line);padding:.25rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}
"#;

/// Response time as the browser measures it, keyboard shortcuts (Y / N, 1-9), and one
/// submission per page.
pub const JS: &str = r#"(function(){
var t0=performance.now(),sent=false;
document.querySelectorAll('form.answer').forEach(function(f){
  f.addEventListener('submit',function(e){
    if(sent){e.preventDefault();return;}
    sent=true;
    var c=f.querySelector('input[name=client_ms]');
    if(c){c.value=String(Math.round(performance.now()-t0));}
  });
});
document.addEventListener('keydown',function(e){
  if(e.altKey||e.ctrlKey||e.metaKey){return;}
  var k=e.key.toLowerCase(),b=null;
  if(k==='y'){b=document.querySelector('button[value=yes]');}
  else if(k==='n'){b=document.querySelector('button[value=no]');}
  else if(/^[1-9]$/.test(k)){b=document.querySelectorAll('.options button')[Number(k)-1]||null;}
  if(b){e.preventDefault();b.click();}
});
})();
"#;

fn layout(title: &str, bar: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{}</title>\
<link rel=\"stylesheet\" href=\"/static/study.css\"></head><body>\
<header class=\"bar\"><div><strong>{}</strong>{bar}</div></header><main>{body}</main>\
<script src=\"/static/study.js\" defer></script></body></html>\n",
        esc(title),
        esc(title)
    )
}

fn progress_bar(done: usize, total: usize) -> String {
    format!(
        "<div class=\"progress\"><progress max=\"{total}\" value=\"{done}\" aria-label=\"progress\">{done}/{total}</progress><span>{done} of {total} answered</span></div>"
    )
}

/// The instructions and consent page.
pub fn consent(title: &str, questions: usize, has_best_of: bool, returning: bool) -> String {
    let minutes = (questions as f64 * 6.0 / 60.0).ceil().max(1.0);
    let part2 = if has_best_of {
        "<li><b>Part 2.</b> You see the same picture coloured in several ways. Click the one \
         that looks <b>the most natural</b>.</li>"
    } else {
        ""
    };
    let action = if returning {
        "<p>You have already started: your answers so far are saved.</p>\
<form method=\"get\" action=\"/q\"><button class=\"primary\" type=\"submit\">Continue</button></form>"
            .to_string()
    } else {
        "<form method=\"post\" action=\"/start\">\
<label class=\"consent\"><input type=\"checkbox\" name=\"consent\" value=\"yes\" required>\
<span>I have read the information above, I am at least 18 years old, and I agree to take part.</span></label>\
<button class=\"primary\" type=\"submit\">Start</button></form>"
            .to_string()
    };
    let body = format!(
        "<h1>How natural does the colour look?</h1>\
<div class=\"card\"><p>This study is about pictures whose colour was filled in \
automatically from a grayscale version. We ask how natural they look to you.</p>\
<ul><li><b>Part 1.</b> One picture at a time: does it look like a natural colour picture? \
Answer <b>Yes</b> or <b>No</b>. Some pictures are real colour originals.</li>{part2}</ul>\
<p>There are {questions} questions (about {minutes:.0} minutes). There are no right or wrong \
answers: go with your first impression. Please answer each question once, without the \
browser's back button.</p></div>\
<div class=\"card\"><h2>Your data</h2><ul>\
<li>Taking part is voluntary; you can stop at any time by closing the page.</li>\
<li>We record your answers and how long each took, under a random number kept in a cookie \
of this browser. We do not record your name, your e-mail or your IP address.</li>\
<li>The answers are used for research on automatic colourization and may be published in \
anonymous, aggregated form.</li></ul>{action}</div>"
    );
    layout(title, "", &body)
}

/// A naturalness question.
#[allow(clippy::too_many_arguments)]
pub fn naturalness(
    title: &str,
    part: &str,
    done: usize,
    total: usize,
    item: &str,
    ticket: &str,
    image: &str,
    noun: &str,
) -> String {
    let body = format!(
        "<p class=\"part\">{}</p><p class=\"question\">Does this look like a natural colour {}?</p>\
<form class=\"answer\" method=\"post\" action=\"/answer\">\
<input type=\"hidden\" name=\"item\" value=\"{item}\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
<input type=\"hidden\" name=\"client_ms\" value=\"\">\
<figure class=\"single\"><img src=\"/img/{image}\" alt=\"the picture to judge\"></figure>\
<div class=\"answers\"><button class=\"yes\" type=\"submit\" name=\"choice\" value=\"yes\">Yes, natural</button>\
<button class=\"no\" type=\"submit\" name=\"choice\" value=\"no\">No, not natural</button></div></form>\
<p class=\"hint\">Keys: Y for yes, N for no.</p>",
        esc(part),
        esc(noun),
        esc(ticket)
    );
    layout(title, &progress_bar(done, total), &body)
}

/// A best-of-N question; `options` are image ids in this participant's order.
#[allow(clippy::too_many_arguments)]
pub fn best_of(
    title: &str,
    part: &str,
    done: usize,
    total: usize,
    item: &str,
    ticket: &str,
    options: &[String],
    noun: &str,
) -> String {
    let mut buttons = String::new();
    for (i, id) in options.iter().enumerate() {
        let letter = (b'A' + (i % 26) as u8) as char;
        buttons.push_str(&format!(
            "<button type=\"submit\" name=\"choice\" value=\"{id}\"><img src=\"/img/{id}\" alt=\"picture {letter}\"><span>{letter}</span></button>"
        ));
    }
    let body = format!(
        "<p class=\"part\">{}</p><p class=\"question\">Which of these looks the most natural colour {}? Click it.</p>\
<form class=\"answer\" method=\"post\" action=\"/answer\">\
<input type=\"hidden\" name=\"item\" value=\"{item}\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
<input type=\"hidden\" name=\"client_ms\" value=\"\">\
<div class=\"options\">{buttons}</div></form>\
<p class=\"hint\">Keys: 1 to {} pick a picture from left to right.</p>",
        esc(part),
        esc(noun),
        esc(ticket),
        options.len().min(9)
    );
    layout(title, &progress_bar(done, total), &body)
}

/// The closing page.
pub fn done(title: &str, total: usize, code: &str) -> String {
    let body = format!(
        "<h1>Thank you!</h1><div class=\"card\"><p>All {total} answers are saved. You can close \
this page now.</p><p>If you were asked for a completion code, it is <span class=\"code\">{}</span>.</p></div>",
        esc(code)
    );
    layout(title, &progress_bar(total, total), &body)
}

/// An error or notice page with a way on.
pub fn message(title: &str, heading: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let link = link
        .map(|(href, label)| format!("<p><a href=\"{}\">{}</a></p>", esc(href), esc(label)))
        .unwrap_or_default();
    layout(
        title,
        "",
        &format!(
            "<h1>{}</h1><div class=\"card\"><p>{}</p>{link}</div>",
            esc(heading),
            esc(text)
        ),
    )
}

/// The admin's page: progress and results so far (behind the admin token).
pub fn admin(title: &str, body: &str) -> String {
    layout(&format!("{title}: results"), "", body)
}
