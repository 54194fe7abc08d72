--[[
Book numbering and cross-references for the ex4 renderer, in the manner of Quarto books.

Input: the whole book as one document, each chapter preceded by an empty Div of class
`ex4-chapter-start` (attributes: number, page, appendix). The filter
  1. numbers chapters (3, or A for appendices), sections (3.1, 3.1.2), figures and tables per chapter
     (Figure 3.2, Table 3.1) and labelled display equations ((3.1));
  2. turns Div floats (`::: {#fig-x}` with the caption as last paragraph or in `ex4-cap`) into Figures;
  3. replaces `@fig-x`, `@tbl-x`, `@sec-x`, `@eq-x` citations by links ("Figure 3.2"), across pages;
  4. adapts a few constructs to the target (metadata `ex4-target`: html or typst).
Metadata `ex4-registry-out` names a JSON file to write the label table to; `ex4-registry-in` names one
to read for labels that live outside this document (a single-chapter variant).
]]

local stringify = pandoc.utils.stringify

local target = "html"
local registry = {}      -- id -> {kind, number, page}
local outside = {}       -- labels from a previous full build (variants)
local unresolved = {}

local KIND_PREFIXES = { fig = "fig", tbl = "tbl", sec = "sec", eq = "eq" }
local REF_WORD = { fig = "Figure", tbl = "Table", sec = "Section", eq = "Equation",
                   chapter = "Chapter", appendix = "Appendix" }

local function kind_of(id)
  local prefix = id:match("^(%a+)%-")
  return prefix and KIND_PREFIXES[prefix] or nil
end

-- chapter state --------------------------------------------------------------------------------------------
local chapter = { number = "", page = "index.html", appendix = false }
local counters, floats, title_seen

local function start_chapter(div)
  chapter = {
    number = div.attributes["number"] or "",
    page = div.attributes["page"] or "index.html",
    appendix = div.attributes["appendix"] == "true",
  }
  counters = { 0, 0, 0, 0, 0, 0 }
  floats = { fig = 0, tbl = 0, eq = 0 }
  title_seen = false
end

local function float_number(kind)
  floats[kind] = floats[kind] + 1
  if chapter.number ~= "" then
    return chapter.number .. "." .. floats[kind]
  end
  return tostring(floats[kind])
end

local function register(id, kind, number)
  if id == nil or id == "" then return end
  if registry[id] ~= nil then
    io.stderr:write("[ex4 crossref] WARNING: label '" .. id .. "' is defined twice\n")
  end
  registry[id] = { kind = kind, number = number, page = chapter.page }
end

-- numbering ------------------------------------------------------------------------------------------------
local function number_inlines(number)
  if target == "typst" then
    return pandoc.Inlines({ pandoc.Str(number), pandoc.RawInline("typst", "#h(0.6em)") })
  end
  return pandoc.Inlines({ pandoc.Span({ pandoc.Str(number) }, { class = "header-section-number" }), pandoc.Space() })
end

local function number_header(header)
  local unnumbered = header.classes:includes("unnumbered")
  if header.level == 1 and not title_seen then
    title_seen = true
    header.classes:insert("ex4-chapter-title")
    if chapter.number ~= "" and not unnumbered then
      header.content = number_inlines(chapter.number) .. header.content
      if header.identifier:match("^sec%-") then
        register(header.identifier, chapter.appendix and "appendix" or "chapter", chapter.number)
      end
    end
    return header
  end
  if chapter.number == "" or unnumbered then return header end
  local depth = math.max(header.level - 1, 1)
  counters[depth] = counters[depth] + 1
  for deeper = depth + 1, #counters do counters[deeper] = 0 end
  local parts = { chapter.number }
  for level = 1, depth do parts[#parts + 1] = tostring(counters[level]) end
  local number = table.concat(parts, ".")
  header.content = number_inlines(number) .. header.content
  if header.identifier:match("^sec%-") then register(header.identifier, "sec", number) end
  return header
end

local function caption_with_label(kind, number, inlines)
  local word = kind == "fig" and "Figure" or "Table"
  local label = { pandoc.Str(word), pandoc.Space(), pandoc.Str(number .. ":") }
  local prefix
  if target == "html" then
    prefix = pandoc.Inlines({ pandoc.Span(label, { class = "float-label" }) })
  else
    prefix = pandoc.Inlines({ pandoc.Strong(label) })
  end
  if inlines and #inlines > 0 then
    return prefix .. pandoc.Inlines({ pandoc.Space() }) .. pandoc.Inlines(inlines)
  end
  return prefix
end

local function caption_inlines_from_attr(text)
  if text == nil or text == "" then return nil end
  local blocks = pandoc.read(text, "markdown").blocks
  if #blocks == 0 then return nil end
  return blocks[1].content
end

local function float_from_div(div)
  local id = div.identifier
  local kind = kind_of(id)
  if kind ~= "fig" and kind ~= "tbl" then
    kind = div.attributes["ex4-kind"]
    id = ""
  end
  local content = div.content
  local caption = caption_inlines_from_attr(div.attributes["ex4-cap"])
  if caption == nil and #content > 1 and content[#content].t == "Para" then
    caption = content[#content].content
    content = pandoc.Blocks({ table.unpack(content, 1, #content - 1) })
  end
  local number = id ~= "" and float_number(kind) or nil
  if number then register(id, kind, number) end
  local full = number and caption_with_label(kind, number, caption) or (caption or {})
  if kind == "tbl" then
    -- a table float: the caption goes on the table itself (shown above it, as tables are captioned)
    for index, block in ipairs(content) do
      if block.t == "Table" then
        block.caption = { long = { pandoc.Plain(full) } }
        block.identifier = id
        content[index] = block
        return pandoc.Div(content, { class = "ex4-table-float" })
      end
    end
  end
  -- images inside a figure need no alt text of their own: the caption describes them
  return pandoc.Figure(content, { long = { pandoc.Plain(full) } }, { id = id, class = "ex4-" .. kind })
end

local function number_figure(figure)
  local kind = kind_of(figure.identifier)
  if kind ~= "fig" and kind ~= "tbl" then return figure end
  local number = float_number(kind)
  register(figure.identifier, kind, number)
  local inlines = {}
  if figure.caption.long and #figure.caption.long > 0 then inlines = figure.caption.long[1].content end
  figure.caption = { long = { pandoc.Plain(caption_with_label(kind, number, inlines)) } }
  return figure
end

local function number_table(tbl)
  if kind_of(tbl.identifier) ~= "tbl" then return tbl end
  local number = float_number("tbl")
  register(tbl.identifier, "tbl", number)
  local inlines = {}
  if tbl.caption.long and #tbl.caption.long > 0 then inlines = tbl.caption.long[1].content end
  tbl.caption = { long = { pandoc.Plain(caption_with_label("tbl", number, inlines)) } }
  return tbl
end

local function number_equation(para)
  -- `$$ ... $$ {#eq-x}` arrives as Para [Math, Space?, Str "{#eq-x}"]
  local content = para.content
  if #content < 2 or content[1].t ~= "Math" or content[1].mathtype ~= "DisplayMath" then return nil end
  local last = content[#content]
  if last.t ~= "Str" then return nil end
  local id = last.text:match("^{#(eq%-[%w_%-:.]+)}$")
  if not id then return nil end
  local number = float_number("eq")
  register(id, "eq", number)
  local math = content[1]
  if target == "typst" then
    local body = pandoc.write(pandoc.Pandoc({ pandoc.Plain({ math }) }), "typst"):gsub("%s+$", "")
    return pandoc.RawBlock("typst", '#[#set math.equation(numbering: _ => "(' .. number .. ')")\n'
      .. body .. " <" .. id .. ">]")
  end
  return pandoc.Para({ pandoc.Span({ math, pandoc.Span({ pandoc.Str("(" .. number .. ")") },
    { class = "eq-number" }) }, { id = id, class = "ex4-equation" }) })
end

local numbering = {
  traverse = "topdown",
  Div = function(div)
    if div.classes:includes("ex4-chapter-start") then
      start_chapter(div)
      return div, false
    end
    local kind = kind_of(div.identifier)
    if kind == "fig" or kind == "tbl" or div.classes:includes("ex4-float") then
      return float_from_div(div), false
    end
    return div
  end,
  Header = function(header) return number_header(header), false end,
  Figure = function(figure) return number_figure(figure), false end,
  Table = function(tbl) return number_table(tbl), false end,
  Para = function(para)
    local equation = number_equation(para)
    if equation then return equation, false end
    return para
  end,
}

-- references -----------------------------------------------------------------------------------------------
local function relative_href(page, from_page)
  if page == from_page then return "" end
  local function split(path)
    local parts = {}
    for part in path:gmatch("[^/]+") do parts[#parts + 1] = part end
    return parts
  end
  local to, from = split(page), split(from_page)
  table.remove(from) -- the directory of the current page
  local common = 0
  while common < #from and common < #to - 1 and from[common + 1] == to[common + 1] do common = common + 1 end
  local out = {}
  for _ = common + 1, #from do out[#out + 1] = ".." end
  for index = common + 1, #to do out[#out + 1] = to[index] end
  return table.concat(out, "/")
end

local function reference(citation, current_page)
  local id = citation.id
  local entry = registry[id]
  local linked = true
  if entry == nil then
    entry = outside[id]
    linked = false
  end
  if entry == nil then return nil end
  local word = REF_WORD[entry.kind] or ""
  local first = stringify(citation.prefix or {})
  local text
  if citation.mode == "SuppressAuthor" then
    text = { pandoc.Str(entry.kind == "eq" and "(" .. entry.number .. ")" or entry.number) }
  elseif entry.kind == "eq" then
    text = { pandoc.Str(word), pandoc.Space(), pandoc.Str("(" .. entry.number .. ")") }
  else
    text = { pandoc.Str(word), pandoc.Space(), pandoc.Str(entry.number) }
  end
  local inlines = {}
  if first ~= "" then inlines = { pandoc.Str(first), pandoc.Space() } end
  if linked then
    local href = "#" .. id
    if target == "html" then href = relative_href(entry.page, current_page) .. "#" .. id end
    inlines[#inlines + 1] = pandoc.Link(text, href, "", { class = "quarto-xref" })
  else
    for _, item in ipairs(text) do inlines[#inlines + 1] = item end
  end
  if citation.suffix and #citation.suffix > 0 then
    for _, item in ipairs(citation.suffix) do inlines[#inlines + 1] = item end
  end
  return inlines
end

local current_page = "index.html"
local references = {
  traverse = "topdown",
  Div = function(div)
    if div.classes:includes("ex4-chapter-start") then current_page = div.attributes["page"] or current_page end
    return div
  end,
  Cite = function(cite)
    local out = {}
    local any_xref = false
    for index, citation in ipairs(cite.citations) do
      if kind_of(citation.id) then
        any_xref = true
        local inlines = reference(citation, current_page)
        if inlines == nil then
          unresolved[#unresolved + 1] = citation.id
          io.stderr:write("[ex4 crossref] WARNING: unresolved reference @" .. citation.id .. "\n")
          inlines = { pandoc.Strong({ pandoc.Str("?@" .. citation.id) }) }
        end
        if index > 1 then
          out[#out + 1] = pandoc.Str(index == #cite.citations and " and" or ",")
          out[#out + 1] = pandoc.Space()
        end
        for _, item in ipairs(inlines) do out[#out + 1] = item end
      end
    end
    if any_xref then return out end
    return cite
  end,
}

-- target adaptations ---------------------------------------------------------------------------------------
local appendix_started = false
local adapt = {
  Div = function(div)
    if div.classes:includes("ex4-fold") then
      if target ~= "html" then return div.content end
      local summary = div.attributes["summary"] or "Code"
      local open = div.attributes["open"] == "true" and " open" or ""
      local blocks = { pandoc.RawBlock("html", '<details class="code-fold"' .. open .. "><summary>"
        .. summary .. "</summary>") }
      for _, block in ipairs(div.content) do blocks[#blocks + 1] = block end
      blocks[#blocks + 1] = pandoc.RawBlock("html", "</details>")
      return blocks
    end
    local boxed = div.classes:includes("ex4-params")
    for _, class in ipairs(div.classes) do
      if class:match("^callout") then boxed = true end
    end
    if target == "typst" and boxed then
      local blocks = { pandoc.RawBlock("typst", "#block(fill: luma(242), stroke: 0.5pt + luma(180), "
        .. "inset: 8pt, radius: 3pt, width: 100%)[") }
      for _, block in ipairs(div.content) do blocks[#blocks + 1] = block end
      blocks[#blocks + 1] = pandoc.RawBlock("typst", "]")
      return blocks
    end
    if target == "typst" and div.classes:includes("ex4-chapter-start") then
      if div.attributes["appendix"] == "true" and not appendix_started then
        appendix_started = true
        return pandoc.RawBlock("typst", "#ex4-appendix-start()")
      end
      return {}
    end
    return div
  end,
  Header = function(header)
    if target == "html" and header.classes:includes("ex4-chapter-title") then
      -- the page's own title: an <h1> outside the page's table of contents (which lists its sections)
      local inner = pandoc.write(pandoc.Pandoc({ pandoc.Plain(header.content) }), "html5"):gsub("%s+$", "")
      local id = header.identifier ~= "" and (' id="' .. header.identifier .. '"') or ""
      return pandoc.RawBlock("html", "<h1" .. id .. ' class="title chapter-title">' .. inner .. "</h1>")
    end
    return header
  end,
}

function Pandoc(doc)
  target = stringify(doc.meta["ex4-target"] or "html")
  local registry_in = stringify(doc.meta["ex4-registry-in"] or "")
  if registry_in ~= "" then
    local handle = io.open(registry_in, "r")
    if handle then
      local ok, decoded = pcall(pandoc.json.decode, handle:read("a"), false)
      handle:close()
      if ok and type(decoded) == "table" and type(decoded.labels) == "table" then outside = decoded.labels end
    end
  end
  start_chapter(pandoc.Div({}, { class = "ex4-chapter-start" }))
  doc = doc:walk(numbering)
  doc = doc:walk(references)
  doc = doc:walk(adapt)
  local registry_out = stringify(doc.meta["ex4-registry-out"] or "")
  if registry_out ~= "" then
    local handle = assert(io.open(registry_out, "w"))
    handle:write(pandoc.json.encode({ labels = registry, unresolved = unresolved }))
    handle:close()
  end
  return doc
end
