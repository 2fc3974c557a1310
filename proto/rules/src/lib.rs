//! The rules every field of the contract follows (docs/security.md#input-limits):
//! the shape and length of ids, names, phone numbers and skills, and how an
//! error message repeats a client's input. The engine applies them to every
//! command and the clients' roster CSV reader to every row, with these same
//! functions, so that both take and refuse the same values. No dependencies:
//! the engine and the client crate both build on it.

#![forbid(unsafe_code)]

/// The longest id of something a client names when adding it (a person,
/// an incident, an area, a plan).
pub const MAX_ID_CHARS: usize = 64;

/// Checks the id of something being added: 1 to 64 characters, each a
/// letter A-Z or a-z, a digit, '.', '_' or '-' (docs/security.md#input-limits).
/// Ids the dispatcher makes itself and ids only looked up are not checked:
/// a lookup finds the thing or does not.
pub fn check_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{field} is empty; give an id such as p0001"));
    }
    let length = id.chars().count();
    if length > MAX_ID_CHARS {
        return Err(format!(
            "{field} \"{}\" is {length} characters long; ids are at most {MAX_ID_CHARS} characters: shorten it",
            quote(id)
        ));
    }
    if let Some(bad) = id.chars().find(|character| !(character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-'))) {
        return Err(format!(
            "{field} \"{}\" has {bad:?}, which ids may not have; use only letters A-Z and a-z, digits, '.', '_' and '-'",
            quote(id)
        ));
    }
    Ok(())
}

/// How many characters of a client's input an error message repeats.
const QUOTED_CHARS: usize = 64;

/// A client's input (an id above all) as an error message repeats it: whole
/// when short, else its first 64 characters and its length. A status
/// message travels in a header, and stock gRPC clients refuse headers over
/// 8 KiB: an id of 10 KB must not come back whole. Control characters are
/// escaped.
pub fn quote(input: impl AsRef<str>) -> String {
    let input = input.as_ref();
    let mut shown = String::new();
    for character in input.chars().take(QUOTED_CHARS) {
        if character.is_control() {
            shown.extend(character.escape_default());
        } else {
            shown.push(character);
        }
    }
    let length = input.chars().count();
    if length > QUOTED_CHARS {
        shown.push_str(&format!("… ({length} characters)"));
    }
    shown
}

// Limits on a person's record and on skills.
// The engine applies them to every person added or changed (UpsertAgent,
// ImportAgents, `--agents`) and the roster CSV reader to every row, with
// the same functions, so that both take and refuse the same values.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_SKILL_CHARS: usize = 32;
pub const MAX_SKILLS: usize = 32;
pub const MAX_PHONE_CHARS: usize = 32;

/// A phone number, or nothing: up to 32 digits, '+', '-' and spaces, with
/// at least one digit. The number is personal data: the message never
/// repeats it.
pub fn check_phone(phone: &str) -> Result<(), String> {
    let plausible = phone.chars().count() <= MAX_PHONE_CHARS
        && phone.chars().all(|character| character.is_ascii_digit() || matches!(character, '+' | '-' | ' '))
        && phone.chars().any(|character| character.is_ascii_digit());
    if phone.is_empty() || plausible {
        return Ok(());
    }
    Err(format!("phone is not a phone number; use at most {MAX_PHONE_CHARS} digits, '+', '-' and spaces, or leave it empty"))
}

/// A name or a label (a person's name, an incident's category): 1 to 100
/// characters, no control characters.
pub fn check_name(field: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("{field} is empty; fill it in"));
    }
    let length = name.chars().count();
    if length > MAX_NAME_CHARS {
        return Err(format!("{field} is {length} characters long; at most {MAX_NAME_CHARS} characters are allowed: shorten it"));
    }
    if let Some(control) = name.chars().find(|character| character.is_control()) {
        return Err(format!("{field} has a control character ({control:?}); remove it"));
    }
    Ok(())
}

/// Skills as normalised (trimmed, lowercase): at most 32, each 1 to 32
/// characters of a-z, 0-9 and '_'.
pub fn check_skills<'a>(skills: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
    let skills: Vec<&String> = skills.into_iter().collect();
    if skills.len() > MAX_SKILLS {
        return Err(format!(
            "{} skills given; at most {MAX_SKILLS} are allowed per person or task: keep the ones dispatch needs",
            skills.len()
        ));
    }
    for skill in skills {
        let length = skill.chars().count();
        if length > MAX_SKILL_CHARS {
            return Err(format!(
                "skill \"{}\" is {length} characters long; skills are at most {MAX_SKILL_CHARS} characters: use a short \
                 name such as first_aid",
                quote(skill)
            ));
        }
        if let Some(bad) =
            skill.chars().find(|character| !(character.is_ascii_lowercase() || character.is_ascii_digit() || *character == '_'))
        {
            return Err(format!(
                "skill \"{}\" has {bad:?}, which skills may not have; use lowercase letters a-z, digits and '_', e.g. first_aid",
                quote(skill)
            ));
        }
    }
    Ok(())
}
