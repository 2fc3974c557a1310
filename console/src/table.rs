//! Plain-text tables with aligned columns, measured in terminal columns so
//! that Chinese names (two columns per character) line up.

/// How many terminal columns `text` takes: 2 for East Asian wide and
/// full-width characters (CJK ideographs, kana, hangul, full-width forms),
/// 0 for control and combining characters, 1 otherwise.
///
/// A small table rather than the full Unicode data: it covers what rosters
/// and area names hold. Rare characters outside it count as 1 column.
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn char_width(character: char) -> usize {
    let code = u32::from(character);
    if character.is_control() || is_combining(code) {
        return 0;
    }
    if is_wide(code) { 2 } else { 1 }
}

fn is_combining(code: u32) -> bool {
    matches!(code,
        0x0300..=0x036F // combining diacritical marks
        | 0x200B..=0x200F // zero width space, joiners, direction marks
        | 0xFE00..=0xFE0F // variation selectors
    )
}

fn is_wide(code: u32) -> bool {
    matches!(code,
        0x1100..=0x115F // hangul jamo
        | 0x2E80..=0x303E // CJK radicals, punctuation (、。「」)
        | 0x3041..=0x33FF // kana, bopomofo, CJK compatibility
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xA000..=0xA4CF // yi
        | 0xAC00..=0xD7A3 // hangul syllables
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFE30..=0xFE4F // CJK compatibility forms
        | 0xFF00..=0xFF60 // full-width forms (，：（）)
        | 0xFFE0..=0xFFE6 // full-width signs
        | 0x1F300..=0x1F64F // pictographs and emoticons
        | 0x1F900..=0x1F9FF // supplemental pictographs
        | 0x20000..=0x2FFFD // CJK extensions B..
        | 0x30000..=0x3FFFD
    )
}

/// `text` padded with spaces on the right to `width` columns.
pub fn pad_right(text: &str, width: usize) -> String {
    let padding = width.saturating_sub(display_width(text));
    format!("{text}{}", " ".repeat(padding))
}

/// `text` cut to at most `width` columns, ending in "…" when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    let mut kept = String::new();
    let mut used = 0;
    for character in text.chars() {
        let character_width = char_width(character);
        // Leave one column for the ellipsis.
        if used + character_width + 1 > width {
            break;
        }
        kept.push(character);
        used += character_width;
    }
    if width > 0 {
        kept.push('…');
    }
    kept
}

/// `text` cut to `width` columns from the left, with an ellipsis: for ids
/// whose end tells them apart (`drill-1746057600123-12` → `…057600123-12`).
pub fn truncate_start(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut used = 0;
    for character in text.chars().rev() {
        let character_width = char_width(character);
        // Leave one column for the ellipsis.
        if used + character_width + 1 > width {
            break;
        }
        kept.push(character);
        used += character_width;
    }
    if width > 0 {
        kept.push('…');
    }
    kept.into_iter().rev().collect()
}

/// Which side a column's cells are aligned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table: a header row and data rows, rendered with two spaces between
/// columns and no trailing spaces.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, all left-aligned.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|header| header.to_string()).collect(),
            aligns: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Aligns column `index` (from 0) to the right, for numbers.
    pub fn align_right(mut self, index: usize) -> Table {
        if let Some(align) = self.aligns.get_mut(index) {
            *align = Align::Right;
        }
        self
    }

    /// Adds a row; missing cells read as empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                std::iter::once(&self.headers[column])
                    .chain(self.rows.iter().map(|row| &row[column]))
                    .map(|cell| display_width(cell))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for cells in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (column, cell) in cells.iter().enumerate() {
                if column > 0 {
                    line.push_str("  ");
                }
                let padding = " ".repeat(widths[column].saturating_sub(display_width(cell)));
                match self.aligns[column] {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&padding);
                    }
                    Align::Right => {
                        line.push_str(&padding);
                        line.push_str(cell);
                    }
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_cut_from_the_left_keeps_its_end() {
        assert_eq!(truncate_start("drill-1746057600123-12", 10), "…600123-12");
        assert_eq!(truncate_start("inc-000001", 10), "inc-000001");
        assert_eq!(truncate_start("柳岸社区第1网格", 6), "…1网格");
        assert_eq!(truncate_start("abc", 0), "");
    }

    #[test]
    fn chinese_characters_are_two_columns_wide() {
        assert_eq!(display_width("p0001"), 5);
        assert_eq!(display_width("王芳"), 4);
        assert_eq!(display_width("柳岸社区第1网格"), 15);
        assert_eq!(display_width("（紧急）"), 8);
        assert_eq!(display_width("e\u{301}"), 1);
        assert_eq!(display_width(""), 0);
    }

    #[test]
    fn columns_line_up_with_chinese_names() {
        let mut table = Table::new(&["ID", "NAME", "ROLE"]);
        table.row(vec!["p0001".into(), "黄磊".into(), "grid_leader".into()]);
        table.row(vec!["p0002".into(), "欧阳桂英".into(), "volunteer".into()]);
        table.row(vec!["p10".into(), "Li Na".into(), "sunk_cadre".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "ID     NAME      ROLE",
                "p0001  黄磊      grid_leader",
                "p0002  欧阳桂英  volunteer",
                "p10    Li Na     sunk_cadre",
            ]
        );
    }

    #[test]
    fn right_aligned_columns_pad_on_the_left() {
        let mut table = Table::new(&["AREA", "PEOPLE"]).align_right(1);
        table.row(vec!["东湖区".into(), "160".into()]);
        table.row(vec!["city".into(), "5".into()]);
        assert_eq!(table.render(), "AREA    PEOPLE\n东湖区     160\ncity         5\n");
    }

    #[test]
    fn short_rows_are_filled_and_trailing_spaces_dropped() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["x".into()]);
        assert_eq!(table.render(), "A  B\nx\n");
    }

    #[test]
    fn truncating_keeps_whole_wide_characters() {
        assert_eq!(truncate("柳岸社区第1网格", 7), "柳岸社…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(display_width(&truncate("柳岸社区第1网格", 8)), 7);
        assert_eq!(pad_right("王芳", 6), "王芳  ");
    }
}
